"""Losses. Each returns ``(value, dvalue/dpred)``.

With ``task_axis=True`` the inputs carry a leading task axis T and ``value`` has
shape (T,): each task's own loss, exactly what T separate calls would give.
"""
import numpy as np


def _check_pair(name, pred, target):
    if pred.shape != target.shape:
        raise ValueError(f"{name}: pred and target must have the same shape; "
                         f"got pred {pred.shape} and target {target.shape}")


def mse(pred, target, task_axis=False):
    """Mean squared error over all elements (of each task).

    L = mean (pred - target)^2,  dL/dpred = 2 (pred - target) / n.
    Shapes: pred, target (T?, N, ...) -> value () or (T,), dpred like pred.
    """
    target = np.asarray(target)
    _check_pair("mse", pred, target)
    diff = pred - target
    n = diff.size // len(diff) if task_axis else diff.size      # elements per task
    sq = diff * diff
    value = sq.reshape(len(sq), -1).sum(axis=1) / n if task_axis else sq.sum() / n
    return value, diff * (2.0 / n)


def _check_labels(name, logits, labels):
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name}: labels must be integers, got dtype {labels.dtype}")
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"{name}: labels must have shape {logits.shape[:-1]} for logits of "
                         f"shape {logits.shape}; got {labels.shape}")
    classes = logits.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"{name}: labels must lie in [0, {classes}) for {classes} classes; "
                         f"got values from {labels.min()} to {labels.max()}")


def softmax_cross_entropy(logits, labels, task_axis=False):
    """Mean over samples of -log softmax(logits)[label], by a stable log-sum-exp.

    dL/dlogits = (softmax(logits) - onehot(label)) / N.
    Shapes: logits (T?, N, C), labels (T?, N) integers -> value () or (T,), dlogits like logits.
    """
    labels = np.asarray(labels)
    _check_labels("softmax_cross_entropy", logits, labels)
    z = logits - logits.real.max(axis=-1, keepdims=True)     # shift by the max: exp never overflows
    e = np.exp(z)
    total = e.sum(axis=-1, keepdims=True)
    n = labels.shape[-1]
    picked = np.take_along_axis(z, labels[..., None], axis=-1)[..., 0]   # (T?, N)
    value = (np.log(total[..., 0]) - picked).sum(axis=-1) / n
    dlogits = e / total
    np.put_along_axis(dlogits, labels[..., None],
                      np.take_along_axis(dlogits, labels[..., None], axis=-1) - 1, axis=-1)
    return value, dlogits / n


def accuracy(logits, labels):
    """Fraction of samples whose largest logit is the label. Shapes: (T?, N, C), (T?, N) -> () or (T,)."""
    labels = np.asarray(labels)
    _check_labels("accuracy", logits, labels)
    return (logits.real.argmax(axis=-1) == labels).mean(axis=-1)
