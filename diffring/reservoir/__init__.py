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
