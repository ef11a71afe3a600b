"""diffring: batched, differentiable simulation of differentiating-neuron ring oscillators."""

from . import (
    _init as init,  # noqa: F401  (diffring.init.pulses, ...)
    _plot as plot,  # noqa: F401  (diffring.plot.phase_map, kymograph, log_series, ...)
)
from ._adaptive import (
    AbstractTableau as AbstractTableau,
    AdaptiveRK as AdaptiveRK,
    DormandPrince54 as DormandPrince54,
    DormandPrince87 as DormandPrince87,
    Tsitouras54 as Tsitouras54,
)
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
from ._catalogue import (
    basin_table as basin_table,
    basins as basins,
    catalogue as catalogue,
    floquet as floquet,
    measured_periods as measured_periods,
    ring_orbits as ring_orbits,
    spec_period as spec_period,
)
from ._coupling import (
    AbstractCoupling as AbstractCoupling,
    LatticeS0Coupling as LatticeS0Coupling,
    RingCoupling as RingCoupling,
    SparseCoupling as SparseCoupling,
)
from ._errors import DiffringError as DiffringError
from ._experiments import (
    EXPERIMENTS as EXPERIMENTS,
    fit_power_law as fit_power_law,
    ratio_ci as ratio_ci,
    run_experiment as run_experiment,
    steady_state as steady_state,
)
from ._models import (
    AbstractModel as AbstractModel,
    AbstractSteppedModel as AbstractSteppedModel,
    DiscreteMap as DiscreteMap,
    HardTrigger as HardTrigger,
    State as State,
)
from ._network import Network as Network, Rings as Rings
from ._observables import (
    CHATTER as CHATTER,
    IRREGULAR as IRREGULAR,
    ORBIT_NAMES as ORBIT_NAMES,
    PULSE as PULSE,
    QUIESCENT as QUIESCENT,
    AbstractXi as AbstractXi,
    Crossing as Crossing,
    Domains as Domains,
    ExpFit as ExpFit,
    as_grid as as_grid,
    classify_orbits as classify_orbits,
    correlation_axes as correlation_axes,
    correlation_isotropic as correlation_isotropic,
    correlation_length as correlation_length,
    domains as domains,
    fire_counts as fire_counts,
    firing_fraction as firing_fraction,
    global_order as global_order,
    is_periodic as is_periodic,
    lattice_observables as lattice_observables,
    local_order as local_order,
    observe_records as observe_records,
    pulse_count as pulse_count,
    size_distribution as size_distribution,
    track_phases as track_phases,
    wall_bonds as wall_bonds,
    wall_density as wall_density,
)
from ._odesolve import (
    ODESolve as ODESolve,
    ScanAdjoint as ScanAdjoint,
)
from ._phases import PhaseTracker as PhaseTracker, order_parameter as order_parameter
from ._sharding import (
    Sharded as Sharded,
    ShardPlan as ShardPlan,
    lattice_mesh as lattice_mesh,
    shard_batch as shard_batch,
    shard_plan as shard_plan,
)
from ._simulate import (
    STATUS_NAMES as STATUS_NAMES,
    AbstractMethod as AbstractMethod,
    MapScan as MapScan,
    Record as Record,
    Solution as Solution,
    batched_model as batched_model,
    simulate as simulate,
    simulate_batch as simulate_batch,
)
from ._smooth import SmoothRelaxation as SmoothRelaxation
from ._threshold import (
    AbstractThreshold as AbstractThreshold,
    HardThreshold as HardThreshold,
    SigmoidSurrogate as SigmoidSurrogate,
    SoftThreshold as SoftThreshold,
)

__version__ = "0.1.0"
