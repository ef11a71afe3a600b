"""Reservoir computing with differentiating ring oscillators: readouts, complexity measures, tuning."""

from ._metrics import (
    accuracy as accuracy,
    nrmse as nrmse,
    one_vs_rest as one_vs_rest,
    predict_labels as predict_labels,
)
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
from ._complexity import (
    complexity_sweep as complexity_sweep,
    effective_dimensionality as effective_dimensionality,
    hamming_distance as hamming_distance,
    input_sensitivity as input_sensitivity,
    neural_entropy as neural_entropy,
    pattern_entropy as pattern_entropy,
)
