"""Reservoir computing with differentiating ring oscillators: readouts, complexity measures, tuning."""

from ._baselines import EchoStateNetwork as EchoStateNetwork, raw_features as raw_features
from ._complexity import (
    complexity_sweep as complexity_sweep,
    effective_dimensionality as effective_dimensionality,
    hamming_distance as hamming_distance,
    input_sensitivity as input_sensitivity,
    neural_entropy as neural_entropy,
    pattern_entropy as pattern_entropy,
)
from ._encoders import (
    AbstractEncoder as AbstractEncoder,
    ImageEncoder as ImageEncoder,
    SeriesEncoder as SeriesEncoder,
    hilbert_order as hilbert_order,
    hold_index as hold_index,
)
from ._features import (
    AbstractFeature as AbstractFeature,
    Features as Features,
    MeanFiring as MeanFiring,
    Phases as Phases,
    Snapshots as Snapshots,
    Voltages as Voltages,
)
from ._metrics import (
    accuracy as accuracy,
    nrmse as nrmse,
    one_vs_rest as one_vs_rest,
    predict_labels as predict_labels,
)
from ._pipeline import esn_features as esn_features, evaluate as evaluate, reservoir_features as reservoir_features
from ._readouts import (
    MSE as MSE,
    RLS as RLS,
    AbstractAlphaSelection as AbstractAlphaSelection,
    AbstractLoss as AbstractLoss,
    AbstractReadout as AbstractReadout,
    CrossEntropy as CrossEntropy,
    GradientReadout as GradientReadout,
    GradientState as GradientState,
    KFold as KFold,
    Ridge as Ridge,
    RidgeState as RidgeState,
    RLSState as RLSState,
    ValidationSplit as ValidationSplit,
)
from ._tasks import (
    Dataset as Dataset,
    digits as digits,
    flipflop as flipflop,
    load_idx as load_idx,
    load_npz as load_npz,
    mackey_glass as mackey_glass,
    mackey_glass_series as mackey_glass_series,
    memory_capacity as memory_capacity,
    mnist_idx as mnist_idx,
    mnist_npz as mnist_npz,
    narma10 as narma10,
    split_mask as split_mask,
)
from ._tuning import (
    TunedParams as TunedParams,
    TuningProblem as TuningProblem,
    TuningSpace as TuningSpace,
    tune as tune,
)
