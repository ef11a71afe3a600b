"""diffring: batched, differentiable simulation of differentiating-neuron ring oscillators."""

from ._builders import (
    as_sparse as as_sparse,
    chain as chain,
    from_arrays as from_arrays,
    from_files as from_files,
    lattice as lattice,
    ring as ring,
    rings as rings,
    small_world as small_world,
)
from ._coupling import (
    AbstractCoupling as AbstractCoupling,
    LatticeS0Coupling as LatticeS0Coupling,
    SparseCoupling as SparseCoupling,
)
from ._errors import DiffringError as DiffringError
from ._models import (
    AbstractModel as AbstractModel,
    AbstractSteppedModel as AbstractSteppedModel,
    DiscreteMap as DiscreteMap,
    HardTrigger as HardTrigger,
    SmoothRelaxation as SmoothRelaxation,
    State as State,
)
from . import _init as init  # noqa: F401  (diffring.init.pulses, ...)
from ._network import Network as Network, Rings as Rings
from ._phases import PhaseTracker as PhaseTracker, order_parameter as order_parameter
from ._simulate import (
    STATUS_NAMES as STATUS_NAMES,
    AbstractMethod as AbstractMethod,
    MapScan as MapScan,
    ODESolve as ODESolve,
    Record as Record,
    Solution as Solution,
    batched_model as batched_model,
    simulate as simulate,
    simulate_batch as simulate_batch,
)
from ._threshold import (
    AbstractThreshold as AbstractThreshold,
    HardThreshold as HardThreshold,
    SigmoidSurrogate as SigmoidSurrogate,
    SoftThreshold as SoftThreshold,
)

__version__ = "0.1.0"
