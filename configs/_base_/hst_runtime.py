# Runtime of HST runs: the default one plus PrototypeHook (co-occurrence
# before training, prototypes from the pseudo-label epoch every 5 epochs, as
# the shipped script recomputes them, training progress for the head).
_base_ = './sarb_runtime.py'
