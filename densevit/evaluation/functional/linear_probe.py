"""Linear probe: multinomial logistic regression on frozen, cached features.

Full-batch L-BFGS from zero weights on standardised features. The problem
is convex and starts from a fixed point, so the fit is deterministic (no
random init, no data order) and needs no learning-rate tuning.
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def check_features_labels(x: Tensor,
                          y: Tensor,
                          num_classes: int,
                          name: str = 'train') -> None:
    """Raise ValueError unless ``x`` is (N, C) and ``y`` (N,) in range."""
    if x.dim() != 2:
        raise ValueError(f'{name} features must be (N, C), but got shape '
                         f'{tuple(x.shape)}.')
    if y.dim() != 1 or y.numel() != x.shape[0]:
        raise ValueError(
            f'{name} labels must be (N,) with N = {x.shape[0]} (one per '
            f'feature row), but got shape {tuple(y.shape)}.')
    if y.numel() == 0:
        raise ValueError(f'The {name} split is empty: the probe needs at '
                         'least one labelled sample in it.')
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(
            f'{name} labels must lie in [0, num_classes={num_classes}), but '
            f'got values in [{int(y.min())}, {int(y.max())}]. Set '
            'num_classes to the number of classes of the dataset.')


class LinearProbeClassifier(nn.Module):
    """Standardisation followed by a linear layer; the fitted probe.

    Args:
        mean (Tensor): ``(C,)`` feature mean of the training split.
        std (Tensor): ``(C,)`` feature std of the training split (1 where a
            feature is constant).
        linear (nn.Linear): the fitted classifier on standardised features.
    """

    def __init__(self, mean: Tensor, std: Tensor, linear: nn.Linear):
        super().__init__()
        self.register_buffer('mean', mean)
        self.register_buffer('std', std)
        self.linear = linear

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``(N, num_classes)`` for features ``(N, C)``."""
        x = x.to(self.mean.dtype)
        return self.linear((x - self.mean) / self.std)

    @torch.no_grad()
    def predict(self, x: Tensor, chunk_size: int = 65536) -> Tensor:
        """Predicted class ``(N,)`` for features ``(N, C)``, in chunks."""
        preds = [
            self(chunk).argmax(dim=1) for chunk in x.split(chunk_size, dim=0)
        ]
        if not preds:
            return torch.zeros(0, dtype=torch.long, device=x.device)
        return torch.cat(preds)


def fit_linear_probe(train_x: Tensor,
                     train_y: Tensor,
                     num_classes: int,
                     weight_decay: float = 1e-4,
                     max_iter: int = 100) -> LinearProbeClassifier:
    """Fit a softmax linear classifier on cached features (full batch).

    The loss is mean cross-entropy ``+ weight_decay / 2 * ||W||^2`` (bias
    not decayed), minimised by L-BFGS with strong-Wolfe line search for at
    most ``max_iter`` iterations, starting from zero weights.

    Args:
        train_x (Tensor): ``(N, C)`` features.
        train_y (Tensor): ``(N,)`` integer labels in ``[0, num_classes)``.
        num_classes (int): number of classes.
        weight_decay (float): L2 penalty on the weights (>= 0; the metrics
            check it where it is configured). Defaults to 1e-4.
        max_iter (int): L-BFGS iterations (>= 1, likewise). Defaults to 100.

    Returns:
        LinearProbeClassifier: call it for logits, ``.predict`` for labels.
    """
    train_x = torch.as_tensor(train_x)
    train_y = torch.as_tensor(train_y).long()
    check_features_labels(train_x, train_y, num_classes)
    if torch.unique(train_y).numel() < 2:
        raise ValueError(
            'The probe fit split holds a single class '
            f'({int(train_y[0])}); a classifier cannot be fitted on it. '
            'Evaluate on more samples (or raise the metric\'s '
            'train_fraction) so that the fit share holds at least two '
            'classes.')

    x = train_x.detach().float()
    mean = x.mean(dim=0)
    std = x.std(dim=0, unbiased=False)
    # A constant feature carries no information; dividing by ~0 would only
    # amplify noise in the test features.
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    x = (x - mean) / std

    linear = nn.Linear(x.shape[1], num_classes).to(x.device)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(
        linear.parameters(),
        lr=1.0,
        max_iter=max_iter,
        history_size=10,
        line_search_fn='strong_wolfe')
    y = train_y.to(x.device)

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(linear(x), y)
        loss = loss + 0.5 * weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    # Callers (hooks, metrics) often run under torch.no_grad().
    with torch.enable_grad():
        optimizer.step(closure)
    linear.requires_grad_(False)
    return LinearProbeClassifier(mean, std, linear).eval()


def linear_probe_top1(train_x: Tensor,
                      train_y: Tensor,
                      test_x: Tensor,
                      test_y: Tensor,
                      num_classes: int,
                      weight_decay: float = 1e-4,
                      max_iter: int = 100) -> float:
    """Top-1 accuracy in ``[0, 1]`` of a linear probe fitted on train.

    Args:
        train_x (Tensor): ``(N, C)`` training features.
        train_y (Tensor): ``(N,)`` training labels.
        test_x (Tensor): ``(M, C)`` test features.
        test_y (Tensor): ``(M,)`` test labels.
        num_classes (int): number of classes.
        weight_decay (float): see :func:`fit_linear_probe`.
        max_iter (int): see :func:`fit_linear_probe`.

    Returns:
        float: top-1 accuracy on the test split.
    """
    test_x = torch.as_tensor(test_x)
    test_y = torch.as_tensor(test_y).long()
    check_features_labels(test_x, test_y, num_classes, name='test')
    classifier = fit_linear_probe(train_x, train_y, num_classes, weight_decay,
                                  max_iter)
    pred = classifier.predict(test_x.float())
    return (pred == test_y.to(pred.device)).float().mean().item()
