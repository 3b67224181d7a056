"""Federated learning with secure aggregation on Flower: what runs in each party's TEE and in the aggregator's.

- Each party's `ClientApp` trains a logistic regression on its own partition (full-batch gradient descent,
  `localEpochs` per round) and hands its update to Flower's `secaggplus_mod`, which quantizes it, adds
  pairwise and private masks, and sends only the masked vector. The party's rows never enter a message.
- The `ServerApp` runs FedAvg through `SecAggPlusWorkflow` (parameters from the job spec): the strategy's
  `aggregate_fit` receives a single already-summed result per round, never one party's update.
- A party's node verifies the aggregator's attestation (`AttestationGate`) before it delivers any message to
  its ClientApp; refused, it answers every message with an error that carries no content, and its data
  loader (where the sealed dataset is opened after attested key release) is never called.
- Every party reports the same example count (`FederatedJob.reported_weight`), so no row count crosses.
- DP noise (DP-FedAvg's Gaussian, the standardizer's Laplace) is added in the aggregator from OpenDP's
  CSPRNG-backed samplers (`dp.gaussian_mechanism`, `dp.laplace_mechanism`), never numpy's generator.
- `run_moments` is the DP standardizer's one SecAgg+ round: each party's count, sums and sums of squares
  of its features in the public bounds' [0, 1] space, summed masked; the aggregator noises the sum.

Transport: `LocalGrid` is the in-process stand-in for Flower's SuperLink/SuperNode pair (Flower's
simulation engine needs Ray, which the TEE image does without). Every message crosses it as serialized
protobuf bytes (`flwr.common.serde.message_to_proto`), and it keeps the transcript of those bytes, so a test
can check exactly what left each party. A real deployment replaces it with `flower-superlink` and one
`flower-supernode` per party (see README.md); the ClientApp and ServerApp are the same objects.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import numpy as np
from flwr.app import Context, Message, RecordDict
from flwr.app.error import Error
from flwr.client import NumPyClient
from flwr.clientapp import ClientApp
from flwr.client.mod import fixedclipping_mod, secaggplus_mod
from flwr.common import NDArrays, Parameters, Scalar, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage
from flwr.proto.node_pb2 import NodeInfo
from flwr.server import LegacyContext, ServerApp, ServerConfig
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import DifferentialPrivacyClientSideFixedClipping, FedAvg, Strategy
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from . import dp
from .attestation import AggregatorIdentity, AggregatorRefused, AttestationGate
from .config import FederatedJob
from .data import Array, Bounds, Moments, Partition, Standardizer

SERVER_NODE_ID = 1  # flwr's SUPERLINK_NODE_ID
Loader = Callable[[], Partition]
UpdateObserver = Callable[[str, int, NDArrays, int], None]  # (party, round, plain update, examples)


# --- the model ----------------------------------------------------------------------------------------


def sigmoid(z: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def initial_parameters(features: int) -> NDArrays:
    """Zeros: the same for every party and independent of any data, so the server needs no client's."""
    return [np.zeros(features, dtype=np.float64), np.zeros(1, dtype=np.float64)]


def train_local(params: NDArrays, x: Array, y: Array, job: FederatedJob) -> NDArrays:
    """Full-batch gradient descent on the L2-regularised logistic loss, `job.local_epochs` steps."""
    w, b = params[0].astype(np.float64).copy(), params[1].astype(np.float64).copy()
    n = max(len(y), 1)
    for _ in range(job.local_epochs):
        err = sigmoid(x @ w + b[0]) - y
        w -= job.learning_rate * (x.T @ err / n + job.l2 * w)
        b -= job.learning_rate * np.array([err.mean()])
    return [w, b]


def scores(params: NDArrays, x: Array) -> Array:
    """The model's logit for each row (what HE inference computes on ciphertext)."""
    return x @ params[0] + params[1][0]


def auroc(params: NDArrays, x: Array, y: Array) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, scores(params, x)))


def train_centralized(parts: Iterable[Partition], standardize: Standardizer, job: FederatedJob) -> NDArrays:
    """The baseline a pooled-data trainer would get: the same model and steps, on all rows at once."""
    rows = list(parts)
    x = standardize(np.vstack([p.x for p in rows]))
    y = np.concatenate([p.y for p in rows])
    params = initial_parameters(x.shape[1])
    for _ in range(job.rounds):
        params = train_local(params, x, y, job)
    return params


# --- the party's ClientApp ----------------------------------------------------------------------------


class PartyClient(NumPyClient):
    """One party's trainer. The partition is loaded lazily, on the first training request, i.e. only after
    the node admitted the aggregator; `observer` (tests, audit) sees the plain update inside the party."""

    def __init__(
        self, party: str, loader: Loader, standardize: Standardizer, job: FederatedJob,
        observer: UpdateObserver | None = None,
    ) -> None:
        self.party = party
        self._loader = loader
        self._standardize = standardize
        self._job = job
        self._observer = observer
        self._data: tuple[Array, Array] | None = None

    def _rows(self) -> tuple[Array, Array]:
        if self._data is None:
            part = self._loader()
            self._data = (self._standardize(part.x), part.y)
        return self._data

    def get_parameters(self, config: dict[str, Scalar]) -> NDArrays:
        raise RuntimeError("the server must start from the job's initial parameters, not ask a party for its own")

    def fit(self, parameters: NDArrays, config: dict[str, Scalar]) -> tuple[NDArrays, int, dict[str, Scalar]]:
        x, y = self._rows()
        update = train_local(parameters, x, y, self._job)
        if self._observer is not None:
            self._observer(self.party, int(config.get("server_round", 0)), [a.copy() for a in update], len(y))
        return update, self._job.reported_weight, {}

    def evaluate(self, parameters: NDArrays, config: dict[str, Scalar]) -> tuple[float, int, dict[str, Scalar]]:
        raise RuntimeError("federated evaluation is off: per-site metrics would leave the party unmasked")


class MomentsClient(NumPyClient):
    """One party's share of the DP standardizer: its count, per-feature sums and sums of squares of its
    features clamped and mapped onto [0, 1] by the public bounds, divided by `max_rows` so that they fit
    SecAgg+'s clipping range. Only the masked vector leaves; the aggregator sees the sum."""

    def __init__(self, loader: Loader, bounds: Bounds, job: FederatedJob) -> None:
        assert job.standardizer is not None
        self._loader = loader
        self._bounds = bounds
        self._job = job
        self._max_rows = job.standardizer.max_rows

    def get_parameters(self, config: dict[str, Scalar]) -> NDArrays:
        raise RuntimeError("the moments round starts from the job's zeros, not from a party's values")

    def fit(self, parameters: NDArrays, config: dict[str, Scalar]) -> tuple[NDArrays, int, dict[str, Scalar]]:
        moments = Moments.of(self._bounds.unit(self._loader().x))
        return [moments.vector() / self._max_rows], self._job.reported_weight, {}


def client_app(parties: Mapping[int, str], client: Callable[[str], NumPyClient], job: FederatedJob, *, clip: bool) -> ClientApp:
    """The ClientApp every party runs (`client`: party -> its NumPyClient); with SecAgg+ its only output is
    the masked vector. `clip`: DP-FedAvg's fixed clipping, after secaggplus_mod in the chain, so the update
    is clipped before it is quantized and masked."""

    def client_fn(context: Context) -> Any:
        return client(parties[context.node_id]).to_client()

    mods: list[Any] = [secaggplus_mod] if job.secure_aggregation else []
    if clip:
        mods.append(fixedclipping_mod)
    return ClientApp(client_fn=client_fn, mods=mods)


# --- the aggregator's ServerApp -----------------------------------------------------------------------


class RecordingFedAvg(FedAvg):
    """FedAvg that keeps what the strategy was given each round: the evidence that it saw only the sum."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[list[NDArrays]] = []  # per round, the parameter arrays of every result received
        self.final: NDArrays | None = None

    def configure_fit(self, server_round: int, parameters: Parameters, client_manager: Any) -> Any:
        pairs = super().configure_fit(server_round, parameters, client_manager)
        for _, fit_ins in pairs:
            fit_ins.config["server_round"] = server_round
        return pairs

    def aggregate_fit(
        self, server_round: int, results: list[tuple[ClientProxy, Any]], failures: list[Any]
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        self.seen.append([parameters_to_ndarrays(res.parameters) for _, res in results])
        if failures:
            raise RuntimeError(f"round {server_round}: {len(failures)} parties failed; refusing a partial model")
        aggregated, metrics = super().aggregate_fit(server_round, results, failures)
        if aggregated is not None:
            self.final = parameters_to_ndarrays(aggregated)
        return aggregated, metrics


class RecordingDP(DifferentialPrivacyClientSideFixedClipping):
    """Flower's client-side-clipping DP wrapper (its `configure_fit` sends the clipping norm to each party's
    `fixedclipping_mod`), with the noise drawn by OpenDP's Gaussian mechanism instead of Flower's
    numpy-based sampler; the model it keeps as final is the noised one."""

    strategy: RecordingFedAvg

    def __init__(self, strategy: RecordingFedAvg, mechanism: Any, clipping_norm: float, clients: int) -> None:
        super().__init__(strategy, 0.0, clipping_norm, clients)  # Flower's own noise multiplier is never used
        self.mechanism = mechanism

    def aggregate_fit(
        self, server_round: int, results: list[tuple[ClientProxy, Any]], failures: list[Any]
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        if failures:
            raise RuntimeError(f"round {server_round}: {len(failures)} parties failed; refusing a partial model")
        aggregated, metrics = self.strategy.aggregate_fit(server_round, results, failures)
        if aggregated is None:
            self.strategy.final = None
            return None, metrics
        noisy = [dp.noised(self.mechanism, a) for a in parameters_to_ndarrays(aggregated)]
        self.strategy.final = noisy
        return ndarrays_to_parameters(noisy), metrics


class NoisySum(RecordingFedAvg):
    """The moments round's aggregator: SecAgg+ hands it the mean of the parties' scaled vectors; it scales
    that back to the sum and adds the standardizer's Laplace noise before anything leaves it."""

    def __init__(self, mechanism: Any, total_scale: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mechanism = mechanism
        self.total_scale = total_scale

    def aggregate_fit(
        self, server_round: int, results: list[tuple[ClientProxy, Any]], failures: list[Any]
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        aggregated, metrics = super().aggregate_fit(server_round, results, failures)
        if self.final is None:
            return aggregated, metrics
        # Flower's global parameters are the noised sum too: the un-noised mean never leaves this method.
        self.final = [dp.noised(self.mechanism, self.final[0] * self.total_scale)]
        return ndarrays_to_parameters(self.final), metrics


def rounding_slack(job: FederatedJob, dims: int, order: int) -> float:
    """How far SecAgg+'s stochastic quantization can move one party's contribution, in the units it was
    quantized in: less than one step (2 clippingRange / quantizationRange) per coordinate, on each of two
    neighbouring datasets; in L1 (`order` 1) or L2 (`order` 2). A mechanism's sensitivity adds it, so the
    noise covers the rounding too."""
    if not job.secure_aggregation:
        return 0.0
    step = 2 * job.sec_agg.clipping_range / job.sec_agg.quantization_range
    return 2 * step * dims ** (1 / order)


def dp_fedavg_sensitivity(job: FederatedJob, features: int, clients: int) -> float:
    """L2 sensitivity of one round's mean of clipped updates: (C + rounding slack) / m."""
    assert job.dp is not None
    return (job.dp.clipping_norm + rounding_slack(job, features + 1, 2)) / clients


def dp_fedavg_mechanism(job: FederatedJob, features: int, clients: int) -> Any:
    """OpenDP's Gaussian at sigma = z x sensitivity: its zCDP map at the sensitivity is 1 / (2 z^2) per
    round, the rho the accountant composes over the rounds and charges (z: the job's noise multiplier)."""
    assert job.dp is not None
    return dp.gaussian_mechanism(job.dp.resolved_noise_multiplier(job.rounds) * dp_fedavg_sensitivity(job, features, clients))


def standardizer_sensitivity(job: FederatedJob, features: int) -> float:
    """L1 sensitivity of the summed moments [count, sums, squares] in [0, 1] space: one row adds at most 1
    to each of the 2d + 1 coordinates; plus the rounding slack, scaled back from the max_rows units in
    which the parties' vectors were quantized."""
    assert job.standardizer is not None
    dims = 2 * features + 1
    return dims + rounding_slack(job, dims, 1) * job.standardizer.max_rows


def _fedavg(clients: int, initial: NDArrays, strategy: type[RecordingFedAvg] = RecordingFedAvg, **extra: Any) -> RecordingFedAvg:
    """FedAvg over every party, every round, no evaluation, failures refused (a partial sum is refused)."""
    return strategy(
        fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=clients, min_evaluate_clients=0,
        min_available_clients=clients, initial_parameters=ndarrays_to_parameters(initial),
        accept_failures=False, fit_metrics_aggregation_fn=lambda metrics: {}, **extra,
    )


def server_app(job: FederatedJob, clients: int, features: int) -> tuple[ServerApp, RecordingFedAvg]:
    """The aggregator's ServerApp: FedAvg over SecAgg+ (or plain FedAvg when the job says so: baselines),
    wrapped in DP-FedAvg (Flower's client-side fixed clipping, OpenDP's noise) when the job has `dp`."""
    strategy = _fedavg(clients, initial_parameters(features))
    outer: Strategy = strategy
    if job.dp is not None:
        outer = RecordingDP(strategy, dp_fedavg_mechanism(job, features, clients), job.dp.clipping_norm, clients)
    return _workflow_app(job, outer, job.rounds), strategy


def moments_app(job: FederatedJob, clients: int, features: int, mechanism: Any) -> tuple[ServerApp, RecordingFedAvg]:
    """The aggregator's ServerApp for the standardizer: one SecAgg+ round summing the parties' moments,
    noised by `mechanism` (calibrated and charged before this runs)."""
    assert job.standardizer is not None
    strategy = _fedavg(clients, [np.zeros(2 * features + 1)], NoisySum, mechanism=mechanism,
                       total_scale=clients * job.standardizer.max_rows)
    return _workflow_app(job, strategy, 1), strategy


def _workflow_app(job: FederatedJob, strategy: Strategy, rounds: int) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=rounds), strategy=strategy)
        fit_workflow = None
        if job.secure_aggregation:
            p = job.sec_agg
            fit_workflow = SecAggPlusWorkflow(
                num_shares=p.num_shares, reconstruction_threshold=p.reconstruction_threshold,
                max_weight=p.max_weight, clipping_range=p.clipping_range,
                quantization_range=p.quantization_range, modulus_range=p.modulus_range, timeout=p.timeout,
            )
        DefaultWorkflow(fit_workflow=fit_workflow)(grid, legacy)

    return app


# --- the transport ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wire:
    """One message as it crossed the boundary: direction, the party's node, type, and its bytes."""

    direction: str  # "to-party" or "from-party"
    node_id: int
    message_type: str
    data: bytes
    error: bool = False

    def message(self) -> Message:
        proto = ProtoMessage()
        proto.ParseFromString(self.data)
        return message_from_proto(proto)


@dataclass
class Node:
    """A party's end of the channel (its SuperNode): the gate, the ClientApp and the app's context."""

    party: str
    app: ClientApp
    context: Context
    gate: AttestationGate
    refusal: str | None = None

    def handle(self, message: Message, identity: AggregatorIdentity | None) -> Message:
        try:
            self.gate.admit(identity)
        except AggregatorRefused as exc:
            self.refusal = str(exc)
            return Message(Error(code=403, reason="aggregator not attested"), reply_to=message)
        try:
            return self.app(message, self.context)
        except Exception as exc:  # noqa: BLE001 -- a ClientApp failure goes back as an error, as in Flower
            logging.getLogger(__name__).warning("party %s: ClientApp failed: %s", self.party, exc)
            return Message(Error(code=500, reason=type(exc).__name__), reply_to=message)


class LocalGrid(Grid):
    """In-process Grid: pushes each message as serialized bytes to the party's node and keeps the replies.

    `identity` is what the aggregator's end of every party channel presents (in a deployment: the
    SuperLink's TLS key bound to its attestation evidence).
    """

    def __init__(self, nodes: Mapping[int, Node], run: Run, identity: AggregatorIdentity | None) -> None:
        self._nodes = dict(nodes)
        self._run = run
        self.identity = identity
        self.transcript: list[Wire] = []
        self._replies: dict[str, Message] = {}
        self._lock = threading.Lock()

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self._nodes)

    def get_nodes(self) -> Iterable[NodeInfo]:
        return [NodeInfo(node_id=n) for n in self._nodes]

    def _cross(self, direction: str, node_id: int, message: Message) -> Message:
        data = message_to_proto(message).SerializeToString()
        wire = Wire(direction, node_id, message.metadata.message_type, data, message.has_error())
        with self._lock:
            self.transcript.append(wire)
        return wire.message()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids: list[str] = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = str(uuid4())
            node_id = message.metadata.dst_node_id
            node = self._nodes.get(node_id)
            if node is None:
                raise ValueError(f"no party node {node_id}: the run has nodes {sorted(self._nodes)}")
            delivered = self._cross("to-party", node_id, message)
            reply = node.handle(delivered, self.identity)
            reply.metadata.__dict__["_message_id"] = str(uuid4())
            received = self._cross("from-party", node_id, reply)
            with self._lock:
                self._replies[message.metadata.message_id] = received
            ids.append(message.metadata.message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        with self._lock:
            return [self._replies.pop(i) for i in list(message_ids) if i in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))


# --- one run ------------------------------------------------------------------------------------------


@dataclass
class FederatedResult:
    parameters: NDArrays | None
    rounds_completed: int
    strategy: RecordingFedAvg
    transcript: list[Wire]
    refusals: dict[str, str] = field(default_factory=dict)
    loaded: set[str] = field(default_factory=set)


_RUN_LOCK = threading.Lock()  # flwr's TaskIdentity is process-global: one run at a time per process


def run_federated(
    job: FederatedJob,
    loaders: Mapping[str, Loader],
    standardize: Standardizer,
    features: int,
    gates: Mapping[str, AttestationGate],
    identity: AggregatorIdentity | None,
    observer: UpdateObserver | None = None,
) -> FederatedResult:
    """Train across `loaders` (party -> partition loader) with the aggregator presenting `identity`.

    Refuses before any party trains if the job cannot run for these parties (`job.check_parties`). Parties
    that refuse the aggregator contribute nothing; the run then stops (SecAgg+ halts below its threshold)
    and `parameters` is None.
    """
    sapp, strategy = server_app(job, len(loaders), features)
    return _run(job, loaders, gates, identity, sapp, strategy, clip=job.dp is not None,
                client=lambda party, load: PartyClient(party, load, standardize, job, observer))


def run_moments(
    job: FederatedJob,
    loaders: Mapping[str, Loader],
    bounds: Bounds,
    mechanism: Any,
    gates: Mapping[str, AttestationGate],
    identity: AggregatorIdentity | None,
) -> FederatedResult:
    """The DP standardizer's round: `parameters` is the noised sum [count, sums, squares] (None if refused).
    `mechanism` must already be charged: the parties' data is loaded here."""
    sapp, strategy = moments_app(job, len(loaders), len(bounds.upper), mechanism)
    return _run(job, loaders, gates, identity, sapp, strategy, clip=False,
                client=lambda party, load: MomentsClient(load, bounds, job))


def _run(
    job: FederatedJob, loaders: Mapping[str, Loader], gates: Mapping[str, AttestationGate],
    identity: AggregatorIdentity | None, sapp: ServerApp, strategy: RecordingFedAvg, *, clip: bool,
    client: Callable[[str, Loader], NumPyClient],
) -> FederatedResult:
    """One Flower run over `LocalGrid`: a node per party behind its attestation gate, the ServerApp driving."""
    parties = list(loaders)
    if set(gates) != set(parties):
        raise ValueError(f"every party needs its own attestation gate: parties {parties}, gates {sorted(gates)}")
    job.check_parties(len(parties))
    loaded: set[str] = set()

    def tracking(party: str) -> Loader:
        def load() -> Partition:
            loaded.add(party)
            return loaders[party]()
        return load

    node_ids = {party: secrets.randbits(63) or 1 for party in parties}
    capp = client_app({nid: party for party, nid in node_ids.items()}, lambda p: client(p, tracking(p)), job, clip=clip)
    run_id = secrets.randbits(63)
    run = Run.create_empty(run_id)
    nodes = {
        nid: Node(party, capp, Context(run_id=run_id, node_id=nid, node_config={}, state=RecordDict(), run_config={}), gates[party])
        for party, nid in node_ids.items()
    }
    grid = LocalGrid(nodes, run, identity)
    context = Context(run_id=run_id, node_id=SERVER_NODE_ID, node_config={}, state=RecordDict(), run_config={})
    flwr_log = logging.getLogger("flwr")
    with _RUN_LOCK:
        saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id, flwr_log.level)
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = run_id, SERVER_NODE_ID, 1
        flwr_log.setLevel(logging.WARNING)
        try:
            sapp(grid, context)
        finally:
            TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id, level = saved
            flwr_log.setLevel(level)
    refusals = {node.party: node.refusal for node in nodes.values() if node.refusal}
    return FederatedResult(strategy.final, len(strategy.seen), strategy, grid.transcript, refusals, loaded)


def fedavg(updates: Sequence[NDArrays]) -> NDArrays:
    """Plain unweighted FedAvg (every party reports the same weight): what SecAgg+ must reproduce (up to
    quantization) without showing the terms."""
    return [sum(u[i] for u in updates) / len(updates) for i in range(len(updates[0]))]
