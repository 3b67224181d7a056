"""AMD SEV-SNP: the attestation report's layout, the VCEK/VLEK endorsement and their verification.

`verify.verify_report` is also what other kinds call when their evidence carries an SNP report
(Azure's vTPM evidence wraps one in the HCL report).
"""
