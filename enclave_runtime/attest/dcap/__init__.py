"""Intel DCAP quotes: SGX (quote v3) and TDX (quote v4 and v5), verified to the Intel SGX Root CA."""
