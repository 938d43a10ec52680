"""The ACTEncoder estimator: the scikit-learn contract around the training loop."""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import math
import os
import warnings
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import Any, ClassVar, cast

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
    clone,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

from . import (
    _auto,
    _callbacks,
    _checks,
    _device,
    _encoding,
    _export,
    _freeze,
    _guards,
    _persistence,
    _plan,
    _random,
    _state,
    _training,
    distributed,
)
from . import callbacks as public_callbacks
from ._labels import semi_supervised_target, warn_if_minus_one_ambiguous
from ._params import ParamsMixin
from ._training import NonFiniteLossError
from ._warnings import warn_ignored_params
from .adapters.base import InputAdapter
from .adapters.factory import read_input
from .augment.image import ImageAugment
from .augment.tabular import TabularAugment
from .networks import ProjectionHead, build_encoder
from .objectives import (
    OBJECTIVES,
    ACTLoss,
    Objective,
    make_objective,
    resolve_objective,
)

logger = logging.getLogger(__name__)

#: The batch size that encoding without gradients starts from when ``batch_size`` is
#: ``"auto"`` (:func:`skact._encoding.transform_batch_size` scales it to the input).
ENCODING_BATCH_SIZE = 256


class ACTEncoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Self-supervised feature extractor trained by Adversarial Contrastive Training.

    ``fit`` trains an encoder network on unlabeled data so that two random views of a
    sample map to nearby points while the cross-correlation of the representation stays
    close to the identity; ``transform`` returns the learned representation. The
    regulariser is optimised in its minimax form with an adversary ``G``
    (see :class:`skact.objectives.Adversary`).

    Parameters
    ----------
    n_components : int or None, default=None
        Width of ``transform``'s output: the last layer of the encoder. None takes the
        encoder's natural width (64 for the MLP, 128 for the ConvNet, 512 for ResNet-18).
        For the ConvNet it is the channel count of the last convolution (before global
        pooling); for ResNet-18 a value other than 512 adds a linear layer after the
        pooled 512 features.
    objective : {"act", "barlow_twins", "vicreg", "spectral", "nt_xent"} or \
Objective, default="act"
        Training objective; the baselines share everything else, for comparisons. A
        name uses that objective's default parameters (``"act"``: ``alpha``,
        ``adversary`` and ``adversary_momentum`` below); an instance such as
        ``BarlowTwinsLoss(lambd=0.02)`` or ``ACTLoss(alpha=0.1)`` (see
        :mod:`skact.objectives`) sets its own, which a grid search reaches as
        ``objective__lambd``. ``alpha``, ``adversary`` and ``adversary_momentum``
        configure ``objective="act"`` only, as shortcuts for ``ACTLoss(alpha=...,
        adversary=..., momentum=...)``: with any other objective, an ``ACTLoss``
        instance included (it has its own), they must keep their defaults, else
        ``fit`` raises a ValueError rather than ignore them. To search over
        objectives and ``alpha`` together, give ``GridSearchCV`` a list of grids
        (``[{"objective": ["act"], "alpha": [...]}, {"objective": ["vicreg"]}]``).
    alpha : float, default=0.03
        Weight of the ACT regulariser (the paper's lambda), for ``objective="act"``
        (an ``ACTLoss`` instance has its own ``alpha``). Tune it first. The default
        won the few-shot benchmark (``benchmarks/results/fewshot.md``) against 0.01,
        0.1, 0.3 and 1 on digits images, wine and breast cancer, and tied 0.1 on
        digits as a table.
    n_views : int, default=2
        Views drawn per sample; the loss averages over all pairs of views.
    adversary : {"ema", "previous", "batch"}, default="ema"
        Where ACT's adversary ``G`` comes from: an exponential moving average of past
        batches' ``C_hat - I``, the previous batch's, or the current batch's (biased:
        half the gradient of ``alpha * ||C_hat - I||^2``; not the authors' code, which
        does not detach its first pair's ``G``). See :class:`skact.objectives.Adversary`.
    adversary_momentum : float, default=0.9
        Weight of the past in the ``"ema"`` adversary (``ACTLoss``'s ``momentum``).
    encoder : {"auto", "mlp", "convnet", "resnet18"} or torch.nn.Module or callable, \
default="auto"
        The representation network. ``"auto"`` is ``"mlp"`` for tables; for images it
        depends on the device the fit uses (``device_``): on a CPU or MPS device
        ``"convnet"`` (a 5-layer ConvNet); on CUDA and other accelerators
        ``"convnet"`` when the longer side of the network input (``augment``'s output
        size) is under 32 pixels, else ``"resnet18"`` (the paper's CIFAR ResNet-18:
        3x3 stride-1 stem, no max-pool). The user guide's page on images has the
        table; :func:`resolved_settings` says what a fit would pick. A module is copied
        and trained; a callable is called with the input shape (without the batch
        axis; ``(C, H, W)`` for images) and must return a module. A user network's
        output width is the representation width (``n_components`` must be None or
        equal to it). On a mixed table the network follows a
        :class:`~skact.networks.TabularEmbedding` layer, so a user network receives
        the embedded row.
    hidden_layer_sizes : tuple of int, default=(512, 512)
        Hidden widths of the MLP encoder.
    projection_dim : int or None, default=64
        Output width of the projection head used only in the loss (Linear, BatchNorm,
        ReLU, Linear with a hidden layer twice the representation width). None trains
        the loss on the representation itself.
    corruption_rate : float or "auto", default="auto"
        Tabular views: probability that a cell is replaced by the same feature's value
        in another row (SCARF): a shortcut for
        ``augment=TabularAugment(corruption_rate=...)``, used when ``augment`` is None
        (with a ``TabularAugment`` given, leave it at ``"auto"`` or set the same value:
        a different one raises a ValueError, as any value but ``"auto"`` does for
        images). Both views of a row are corrupted, so at a rate ``p`` up to
        ``1 - (1 - p)**2`` of their cells differ. ``"auto"`` is 0.1 for a table
        with a categorical column and 0.2 for one of numbers only
        (:func:`resolved_settings` says which a fit would use): on the seven
        mixed-type tables of ``benchmarks/results/tables.md`` (linear probe, 10
        labels per class, 5 seeds) 0.2 was 0.052 behind one-hot encoding on Chile and
        0.1 0.003, while 0.3 was worse still and 0.05 could not be told apart from 0.1
        (``benchmarks/results/tables-recipes/tables.md``); on five all-numeric tables
        0.2 was at or above 0.1 with a linear probe, averaged over 1 to 25 labels per
        class (``benchmarks/results/tables-numeric/tables.md``), and wine with one
        label per class scored 0.930 against 0.872 (``fewshot.md``; the digits table
        preferred 0.1, 0.905 against 0.893 with 5 labels). See the user guide's page on
        mixed tables.
    noise_scale : float, default=0.0
        Tabular views: standard deviation of Gaussian noise added to standardised
        features. A shortcut for ``augment=TabularAugment(noise_scale=...)``, with the
        same rules as ``corruption_rate``.
    categorical_features : "from_dtype" or array-like of int, str or bool, \
            default="from_dtype"
        Which columns are categorical, as in
        :class:`~sklearn.ensemble.HistGradientBoostingClassifier`: ``"from_dtype"``
        takes DataFrame columns of a categorical or string dtype and object columns
        holding strings; otherwise column indices, column names or a boolean mask.
        Categorical columns get learned embeddings; their categories are fixed in
        ``fit`` (``categories_``), and a category unseen in ``fit`` maps to a
        dedicated unknown slot embedded as the mean of the column's known categories.
        See :ref:`mixed_tables`.
    handle_missing : {"error", "indicator"}, default="error"
        ``"error"`` rejects missing values (NaN, None). ``"indicator"`` encodes them:
        a missing numeric value becomes the column mean plus a missing indicator
        input; a missing categorical value is a category of its own (NaN, last in
        ``categories_``) with a learned embedding.
    augment : ImageAugment, TabularAugment, callable or None, default=None
        How views are drawn, a nested parameter (``augment__corruption_rate``,
        ``augment__flip_p`` in a grid search). Tables take a
        :class:`skact.augment.TabularAugment`, or None for one built from
        ``corruption_rate`` and ``noise_scale``. Images take an
        :class:`skact.augment.ImageAugment`, whose ``output_size`` is the size the
        network sees, in training and in ``transform``. A view of the other kind of
        input raises a ValueError naming the fix. For images, a callable
        ``views = augment(images, generator)`` of one's own (or a
        :class:`skact.augment.Compose`) is checked once in ``fit``; a model fitted with
        one is pickled, not saved (the user guide's page on images gives the protocol,
        "Your own views"). None: the ACT paper's
        views for images of 32 pixels or more, made at 32 pixels on the longer side
        (aspect kept) when a CPU or MPS device trains on larger images; for tiny
        images, 50-100% crops upsampled 1.5 times, brightness and contrast jitter, no
        flip (the user guide's page on images gives the details).
    image_size : int or tuple of (int, int) or None, default=None
        Height and width images are stored at. Files and PIL images of another size
        are resized with PIL's bilinear filter, arrays with an antialiased bilinear
        resize. None keeps an array's size and takes the most common size among the
        files or PIL images given to ``fit``.
    image_layout : {"auto", "channels_first", "channels_last"}, default="auto"
        Where the channels of a 4-D image array are. ``"auto"``: an axis of size 1, 3
        or 4 holds them; if both axis 1 and the last axis could, the smaller one does
        (the last on a tie).
    channel_mismatch : {"convert", "error"}, default="convert"
        What ``transform``, ``partial_fit`` and a ``warm_start`` fit do with images
        whose channel count differs from the fitted one (a grey data set through a
        model fitted on RGB photographs). ``"convert"``: convert them as PIL's
        ``convert`` does, the same for arrays, PIL images and files, and warn once per
        call naming the conversion: grey is repeated on every channel, RGB becomes grey
        by the ITU-R 601-2 luma ``0.299 R + 0.587 G + 0.114 B``, alpha is dropped (not
        composited on a background, whose colour would be a guess) and a missing alpha
        is opaque. ``"error"``: refuse them with a ValueError.
    batch_size : int or "auto", default="auto"
        Largest number of samples per optimisation step. An epoch splits the data into
        ``ceil(n_samples / batch_size)`` batches of near-equal size (511 samples with
        ``batch_size=256``: 256 and 255), so no step takes more than ``batch_size``;
        no batch takes fewer than 2 samples (BatchNorm needs two), so with
        ``batch_size=2`` an odd number of samples leaves one batch of 3. ``"auto"``:
        256 for tables; for images ``min(256, max(32, n_samples // 20))`` on every
        device, so that small image sets still get about 20 steps per epoch (on 1,257
        digits, 62). Under ``distributed`` training ``n_samples`` counts every rank's.
    max_iter : int or "auto", default="auto"
        Training epochs of ``fit``. ``"auto"``: 100 for tables; for images 50 on CUDA
        and other accelerators (the paper trains 1000 epochs on CIFAR; raise it for
        large image sets), and on a CPU or MPS device a budget of pixels processed,
        ``40,960,000 / (n_samples x view height x view width)`` epochs kept between 5
        and 50 (2,000 views of 32x32: 20; 8x8 digits: 50). A quarter of that for a fit
        that continues a fitted encoder (``warm_start``).
    learning_rate : float or "auto", default="auto"
        Peak learning rate of Adam. Each ``fit`` call (with ``warm_start`` too) runs
        its own schedule over its ``max_iter`` epochs: a linear warm-up over a tenth of
        its steps (at most 500), then a cosine decay to 5% of the peak by its last
        step. A run of ``partial_fit`` calls warms up over its first 100 steps and then
        stays at the peak. ``"auto"``: 1e-3 for tables, 2e-3 for images, on every
        device; a tenth of it, without warm-up, for a fit that continues a fitted
        encoder (``warm_start``, continued pretraining).
    weight_decay : float, default=1e-6
        Adam's weight decay.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when its loss has not
        improved by ``tol`` for ``n_iter_no_change`` epochs; the best weights are kept.
    validation_fraction : float, default=0.1
        Share of the data held out when ``early_stopping`` is True.
    tol : float, default=1e-4
        Minimum improvement of the validation loss (early stopping only).
    n_iter_no_change : int, default=10
        Epochs without improvement before stopping (early stopping only).
    keep_best : {"last", "monitor"}, default="last"
        Which epoch's weights a ``fit`` keeps. ``"last"``: the last epoch's (with
        ``early_stopping``, the epoch of the lowest validation loss). ``"monitor"``:
        the epoch of the highest monitor estimate in ``monitor_curve_`` (the 1-NN
        accuracy of the labeled rows when ``fit`` gets labels, else the effective
        rank), within each ``fit`` or ``partial_fit`` call; early stopping still
        decides when to stop. The default is ``"last"``: with 5 labels per class,
        keeping the monitor's best epoch gave lower test accuracy than the last epoch
        on digits images, digits as a table and wine (0.937 / 0.874 / 0.951 against
        0.959 / 0.902 / 0.975; ``benchmarks/results/selection.md``, the tables with
        ``corruption_rate=0.2``, their default): on so few rows its peak is partly
        noise.
    warm_start : bool, default=False
        Continue training the fitted network (and optimiser) instead of starting anew.
        The parameters that shape the network (``encoder``, ``n_components``,
        ``hidden_layer_sizes``, ``projection_dim``, ``image_size``) must stay as they
        were fitted (a ValueError says which changed); the others may change, and the
        values set now are used (``learning_rate``, ``weight_decay``, ``adversary``,
        ``adversary_momentum``...): the running state is kept (Adam's moments, the
        adversary's average), not the old settings. The table views' ``corruption_rate``
        (``"auto"`` resolved) and ``noise_scale`` (from ``augment`` or the shortcuts)
        are those of the first fit: they are kept with the fitted input statistics.
        The learning-rate schedule starts again, over this fit's ``max_iter`` epochs.

        Continued pretraining (a fitted encoder fitted again, on new data or not):
        ``learning_rate="auto"`` is a tenth of a fresh fit's peak, reached at the first
        step (no warm-up), and ``max_iter="auto"`` a quarter of a fresh fit's epochs
        (at least 1); explicit values are used as set (with the usual warm-up).
        Measured on three tables pretrained on one part and continued on another
        (``benchmarks/bench_transfer.py``): a fresh fit's full schedule lost against
        the frozen upstream encoder (penguins, 5 labels per class: 0.954 against
        0.978), the continued schedule kept it (0.979). ``resolved_settings`` reports
        the continued values. A model loaded from a
        file saved with ``save(path, optimizer_state=False)`` continues with a fresh
        Adam (its moments start from zero).
    device : str or torch.device, default="auto"
        ``"auto"``: CUDA when available, else MPS, else CPU.
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        Precision of the forward passes (training, validation, the monitor and
        ``transform``); the weights, the optimiser and the loss stay in float32 and
        ``transform`` returns float32. ``"bfloat16"``: :func:`torch.autocast` in
        bfloat16 on any device (slower where the device only emulates it).
        ``"auto"``: bfloat16 on GPUs that compute in it (CUDA compute capability 8.0
        or more, ROCm), float32 elsewhere, including every CPU for now (see the user
        guide's page on devices); on a CPU, ``transform`` runs in float32 under
        ``"auto"`` whatever training ran in, so that a model gives the same features
        on every CPU and as its exported file. :func:`resolved_settings` says which
        a fit uses (``precision``, ``transform_precision``).
    distributed : bool or "auto", default="auto"
        Data-parallel training with :mod:`torch.distributed` (see
        :mod:`skact.distributed`). ``"auto"``: when a process group is initialised with
        more than one rank, every rank must call ``fit`` with the same data; each trains
        on its shard, ``batch_size`` is the global batch and the loss is that of the
        global batch. True: the same, and the process group is first initialised from
        torchrun's environment if needed (NCCL on CUDA, gloo otherwise). False: train
        in this process alone, even inside a process group.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, augmentation and batch order. On the CPU a fixed
        seed gives identical results with the same number of torch threads (floating
        point sums depend on how the work is split; joblib workers, as in
        ``GridSearchCV(n_jobs=2)``, run with one thread). Under ``distributed``
        training the weights start from rank 0's and the views differ between ranks.
    verbose : int, default=0
        The progress display on stderr, and nothing else. 0 shows none; 1 shows a
        progress bar with the running loss, which advances within epochs, and after
        the first steps a line with the estimated time of the fit, then the time left
        (estimated again after every step, from the median time of the recent steps);
        2 also writes a line per epoch above the bar, with its loss and the time left.
        Whatever ``verbose``, the fit's summary, its resolved ``"auto"`` settings, the
        time estimate and each epoch's record go to the ``"skact"`` logger at INFO
        (see the user guide's page on integration), and a fit with ``max_iter="auto"``
        estimated to take over 10 minutes on a CPU warns once, naming the parameters
        that would shorten it.
    callbacks : list of skact.callbacks.Callback or None, default=None
        Your code, called at the fit's begin and end, after each epoch with its record
        (loss, monitor, learning rate, seconds, samples per second) and after each
        step; a callback can end the fit (see :mod:`skact.callbacks`, which has
        :class:`~skact.callbacks.CSVLogger` and
        :class:`~skact.callbacks.EarlyStopping`). Each ``fit`` or ``partial_fit`` call
        runs clones of them, kept in ``callbacks_``, so that fits never share one.
        Saved by name and parameters when all are skact's own; a list with one of
        your own classes is saved as None (with a warning).
    freeze : None, "none", "batchnorm" or int, default=None
        Which parts of the encoder stay as they are while it trains (in ``fit``,
        ``partial_fit`` and with ``warm_start``; the projection head always trains).
        None (or ``"none"``): nothing. ``"batchnorm"``: every batch-norm layer runs in
        evaluation mode, normalising with its running statistics and never updating
        them (its scale and shift still train); for a pretrained network and small
        batches. An int ``k``: only the last ``k`` blocks train; the others keep their
        weights (``requires_grad`` is False while training, so Adam skips them) and
        run in evaluation mode. The blocks are the encoder's children with parameters,
        ``nn.Sequential`` containers opened (torchvision's ResNet-18: ``conv1``,
        ``bn1``, ``layer1.0`` ... ``layer4.1``; skact's ``ResNet18``: the stem's
        convolution and batch norm, then its eight residual blocks). Read at every
        training call, so it may change between ``warm_start`` fits.
    image_normalization : {"auto", "imagenet"} or tuple of (mean, std), \
default="auto"
        How image pixels (scaled to [0, 1]) are normalised before the network.
        ``"auto"``: by the per-channel mean and standard deviation measured on the
        ``fit`` images. ``"imagenet"``: by ImageNet's (mean 0.485, 0.456, 0.406; std
        0.229, 0.224, 0.225), what a torchvision or timm model pretrained on ImageNet
        expects (with RGB images; set ``image_size`` to its input size, e.g. 224). A
        pair ``(mean, std)``: one value, or one per channel. Kept with the fitted
        model; tables ignore it.

    Attributes
    ----------
    encoder_ : torch.nn.Module
        The trained representation network.
    projector_ : torch.nn.Module or None
        The projection head used by the loss.
    n_features_in_ : int
        Number of features seen in ``fit`` (for images: values per stored image,
        ``C * H * W``).
    categories_ : list of ndarray
        Categories of each categorical column, in column order, fixed in ``fit``
        (empty when no column is categorical).
    is_categorical_ : ndarray of bool of shape (n_features,) or None
        Which columns were treated as categorical; None when none was.
    feature_names_in_ : ndarray of str
        Column names seen in ``fit`` (DataFrames with string column names only).
    n_iter_ : int
        Epochs trained.
    loss_curve_ : list of float
        Mean training loss of each epoch.
    validation_loss_curve_ : list of float
        Validation loss of each epoch (``early_stopping=True`` only, else empty).
    monitor_curve_ : list of float
        The monitor's estimate of the representation's quality after each epoch (one
        per epoch, as ``loss_curve_``), on a fixed sample of at most 2,000 rows drawn
        from ``random_state``. With labels given to ``fit`` (at least 2 classes of at
        least 2 labeled rows), the few-shot 1-nearest-neighbour accuracy of the
        labeled rows: each is classified by its nearest among at most 5 other
        labeled rows per class, drawn at random, mean of 10 seeded draws (with at
        most 6 labeled rows per class: among all the others, the leave-one-out
        accuracy; with many, a row's near-duplicate is rarely among its 5, so
        overlapping crops or repeated rows do not inflate it); else the effective
        rank of the representation (RankMe: exp of the entropy of its normalised
        singular values, from 1 to ``n_components``).
        A fit whose model ends collapsed (the effective rank of its rows around their
        mean below 1.5) warns.
        NaN for epochs trained by a skact without the monitor.
    monitor_name_ : str
        What ``monitor_curve_`` holds in the last ``fit`` or ``partial_fit`` call:
        ``"few_shot_1nn_accuracy"`` or ``"effective_rank"`` (calls with and without
        labels on one model mix the two in the curve; models saved by an older skact
        hold ``"loo_1nn_accuracy"``, the leave-one-out 1-NN accuracy).
    device_ : torch.device
        Device the network lives on.
    callbacks_ : list of skact.callbacks.Callback
        The clones of ``callbacks`` that the last ``fit`` or ``partial_fit`` call ran,
        as it left them (empty without callbacks, and after :func:`skact.load`).

    See Also
    --------
    sklearn.decomposition.PCA : Linear, unsupervised features.
    sklearn.frozen.FrozenEstimator : Keep a pretrained encoder fixed in a pipeline.

    References
    ----------
    .. [1] Duan, Jiao, Lin, Ma and Yang, "Unsupervised Transfer Learning via Adversarial
       Contrastive Training", arXiv:2408.08533, 2024.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skact import ACTEncoder
    >>> X = load_digits().data[:300]
    >>> enc = ACTEncoder(n_components=16, max_iter=2, random_state=0).fit(X)
    >>> enc.transform(X).shape
    (300, 16)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "objective": [StrOptions(set(OBJECTIVES)), Objective],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "n_views": [Interval(Integral, 2, None, closed="left")],
        "adversary": [StrOptions({"ema", "previous", "batch"})],
        "adversary_momentum": [Interval(Real, 0, 1, closed="left")],
        "encoder": [
            StrOptions({"auto", "mlp", "convnet", "resnet18"}),
            nn.Module,
            callable,
        ],
        "hidden_layer_sizes": ["array-like"],
        "projection_dim": [Interval(Integral, 1, None, closed="left"), None],
        "corruption_rate": [Interval(Real, 0, 1, closed="both"), StrOptions({"auto"})],
        "noise_scale": [Interval(Real, 0, None, closed="left")],
        "categorical_features": ["array-like", StrOptions({"from_dtype"})],
        "handle_missing": [StrOptions({"error", "indicator"})],
        "augment": [ImageAugment, TabularAugment, callable, None],
        "image_size": [Interval(Integral, 1, None, closed="left"), tuple, None],
        "image_layout": [StrOptions({"auto", "channels_first", "channels_last"})],
        "channel_mismatch": [StrOptions({"convert", "error"})],
        "batch_size": [Interval(Integral, 2, None, closed="left"), StrOptions({"auto"})],
        "max_iter": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "keep_best": [StrOptions({"last", "monitor"})],
        "warm_start": ["boolean"],
        "device": [str, torch.device],
        "precision": [StrOptions(set(_auto.PRECISIONS))],
        "distributed": ["boolean", StrOptions({"auto"})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
        "freeze": [
            None,
            StrOptions({"none", "batchnorm"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "image_normalization": [StrOptions({"auto", "imagenet"}), tuple],
    }

    def __init__(
        self,
        n_components: int | None = None,
        *,
        objective: str | Objective = "act",
        alpha: float = 0.03,
        n_views: int = 2,
        adversary: str = "ema",
        adversary_momentum: float = 0.9,
        encoder: str | nn.Module | Callable[..., nn.Module] = "auto",
        hidden_layer_sizes: tuple[int, ...] = (512, 512),
        projection_dim: int | None = 64,
        corruption_rate: float | str = "auto",
        noise_scale: float = 0.0,
        categorical_features: Any = "from_dtype",
        handle_missing: str = "error",
        augment: ImageAugment | Callable[..., Tensor] | None = None,
        image_size: int | tuple[int, int] | None = None,
        image_layout: str = "auto",
        channel_mismatch: str = "convert",
        batch_size: int | str = "auto",
        max_iter: int | str = "auto",
        learning_rate: float | str = "auto",
        weight_decay: float = 1e-6,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        tol: float = 1e-4,
        n_iter_no_change: int = 10,
        keep_best: str = "last",
        warm_start: bool = False,
        device: str | torch.device = "auto",
        precision: str = "auto",
        distributed: bool | str = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        callbacks: list[public_callbacks.Callback] | None = None,
        freeze: str | int | None = None,
        image_normalization: str | tuple[Any, Any] = "auto",
    ) -> None:
        self.n_components = n_components
        self.objective = objective
        self.alpha = alpha
        self.n_views = n_views
        self.adversary = adversary
        self.adversary_momentum = adversary_momentum
        self.encoder = encoder
        self.hidden_layer_sizes = hidden_layer_sizes
        self.projection_dim = projection_dim
        self.corruption_rate = corruption_rate
        self.noise_scale = noise_scale
        self.categorical_features = categorical_features
        self.handle_missing = handle_missing
        self.augment = augment
        self.image_size = image_size
        self.image_layout = image_layout
        self.channel_mismatch = channel_mismatch
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.keep_best = keep_best
        self.warm_start = warm_start
        self.device = device
        self.precision = precision
        self.distributed = distributed
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.freeze = freeze
        self.image_normalization = image_normalization

    # ------------------------------------------------------------------ sklearn API

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> ACTEncoder:
        """Train the encoder on ``X`` for ``max_iter`` epochs; labels only monitor it.

        The objective is self-supervised over every row of ``X``, labeled or not; the
        labeled rows of ``y`` feed the monitor (``monitor_curve_``, and ``keep_best``).

        When the fit fails, nothing trained is lost and nothing half-done or diverged
        is kept. "Before the call" below means unfitted for a new model, and exactly
        the state before the call (weights, optimizer state, ``n_iter_``, random
        state) with ``warm_start`` or in ``partial_fit``:

        - bad input or parameters, or any other error (one raised in the middle of a
          training step included): the estimator is left as before the call;
        - training diverges: :class:`NonFiniteLossError` is raised, and the model of
          the last epoch of this call that was sound is kept (``n_iter_`` counts the
          epochs it had), else the estimator is left as before the call. An epoch is
          sound when its loss is finite, the weights' root mean square has not grown
          more than 1000-fold in this call (from at least 0.01) and the optimizer's
          moments are finite: skact's objectives normalise the embeddings, so a loss
          can stay finite while the weights blow up. When the loss or its gradient is
          already non-finite at the first step, before any update, the message says
          that the learning rate is not the cause (the starting weights are, with
          ``warm_start``, or extreme values in X);
        - Ctrl-C (KeyboardInterrupt): training stops at the end of the current step (a
          step slower than a second is abandoned at once, with the weights of the last
          complete step), the model trained so far is kept and usable by
          ``transform`` (``n_iter_`` counts the complete epochs), a warning says so,
          and the KeyboardInterrupt is raised again, so that scripts stop as the user
          asked; catch it to go on. A second Ctrl-C interrupts at once and drops only
          the step under way (the optimizer's update itself finishes first). If no
          step finished, the estimator is left as before the call;
        - CUDA out of memory: the epoch is retried with half the batch size (with a
          warning), down to 16, then ``torch.cuda.OutOfMemoryError`` is raised and
          the estimator is left as before the call;
        - an error while computing the early-stopping validation loss (after an epoch
          finished): the model trained so far is kept, as after Ctrl-C, and the error
          is raised with a note saying so.

        The learning rate follows its own schedule in every call: a linear warm-up
        over a tenth of the call's steps (at most 500), then a cosine decay to 5% of
        ``learning_rate`` at the call's last step; with ``warm_start`` too, where
        ``learning_rate="auto"`` is a tenth of the fresh peak without warm-up and
        ``max_iter="auto"`` a quarter of the fresh epochs (continued pretraining; see
        ``warm_start``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or images
            Training data: a table, or images (an array of shape ``(n, H, W)``,
            ``(n, H, W, C)`` or ``(n, C, H, W)``, or a sequence of PIL images or file
            paths), stored on the host as uint8.
        y : array-like of shape (n_samples,) or None, default=None
            Class labels in scikit-learn's semi-supervised convention: -1 marks an
            unlabeled row (as for :class:`~sklearn.semi_supervised.SelfTrainingClassifier`),
            and so do the text ``"-1"``, NaN, None, pandas' NA and blank text (the rule
            of the user guide's :ref:`unlabeled-rows`; a warning says when the -1
            labels look like a class). None: no labels (the monitor follows the
            effective rank).

        Returns
        -------
        self : ACTEncoder
            The fitted estimator.
        """
        continuing = self.warm_start and hasattr(self, "encoder_")
        return self._fit(X, y, epochs=self.max_iter, reset=not continuing, horizon=True)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any = None) -> ACTEncoder:
        """Train one epoch on ``X``, creating the model on the first call.

        Preprocessing statistics are measured on the first call and kept. The learning
        rate warms up linearly over the first 100 optimiser steps of a run of
        ``partial_fit`` calls (those of a new model, or those after a ``fit``), then
        stays at ``learning_rate``: there is no known end to decay to. Failures are
        handled as in :meth:`fit`; a failed call after the first (a divergence
        included) leaves the estimator as it was, unless Ctrl-C kept the steps that
        finished. A model loaded from a file saved with ``optimizer_state=False``
        continues with a fresh Adam.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or images
            A chunk of training data. Image files are read batch by batch, so a
            folder larger than memory can be passed whole; no validation data is held
            out from them.
        y : array-like of shape (n_samples,) or None, default=None
            Labels of the chunk's rows for the monitor, -1 (or NaN, None, blank text)
            for an unlabeled row, as in :meth:`fit`.

        Returns
        -------
        self : ACTEncoder
            The estimator, trained one more epoch.
        """
        reset = not hasattr(self, "encoder_")
        return self._fit(X, y, epochs=1, reset=reset, horizon=False)

    def transform(self, X: Any) -> np.ndarray:
        """Return the learned representation of ``X``.

        The encoder runs in evaluation mode, in batches of ``batch_size``, without
        gradients.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or images
            Data of the kind seen in ``fit``; images are read and encoded in batches.

        Returns
        -------
        ndarray of shape (n_samples, n_components), float32
        """
        check_is_fitted(self)
        _, X = self._read_input(X, reset=False)
        adapter: InputAdapter = self._adapter
        self._warn_unfamiliar(X)
        encoder: nn.Module = self.encoder_
        device = self.device_
        out = np.empty((_n_samples(X), self._n_features_out), dtype=np.float32)
        step = self._encoding_batch_size()
        starts = range(0, out.shape[0], step)
        stored = (
            _device.to_device(adapter.to_storage(X[start : start + step]), device)
            for start in starts
        )
        encoded = _encoding.encode_batches(
            encoder, stored, adapter.to_model, device, self._autocast_dtype(transform=True)
        )
        with _device.torch_threads():
            for start, z in zip(starts, encoded, strict=True):
                out[start : start + step] = z.cpu().numpy()
        _checks.check_output(out, type(self).__name__)
        return out

    def score(self, X: Any, y: Any = None) -> float:
        """The monitor's estimate of the representation's quality on ``X``.

        With labels, the few-shot 1-nearest-neighbour accuracy of the labeled rows'
        representation (at most 2,000 of them, drawn from the model's seed): each
        labeled row is classified by its nearest among at most 5 other labeled rows
        per class, drawn at random, averaged over 10 seeded draws; the quantity
        ``monitor_curve_``
        holds for a ``fit`` with labels, a few-shot score for
        :class:`~sklearn.model_selection.GridSearchCV` on data with few labels.
        Without labels, the effective rank of the representation of at most 2,000
        rows, divided by its width ``n_components``, in (0, 1]. The label-free score is
        a diagnostic (near ``1 / n_components``: collapsed), not a model-selection
        criterion.

        How well each ranks settings, measured over a grid of ``alpha`` and epochs with
        5 labels per class (Spearman's rho with few-shot test accuracy, mean over 10
        label draws; ``benchmarks/results/selection.md``) is in that file and the
        grid-search guide. Prefer the score with labels, and read either as a guide
        among settings whose scores differ clearly.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or images
            Data of the kind seen in ``fit``.
        y : array-like of shape (n_samples,) or None, default=None
            Labels, -1 (or NaN, None, blank text) for an unlabeled row, as in
            :meth:`fit`; at least 2 classes need 2 labeled rows each. None: the
            label-free score.

        Returns
        -------
        float
        """
        check_is_fitted(self)
        _, X = self._read_input(X, reset=False)
        n_samples = _n_samples(X)
        target = _check_labels(y, n_samples)
        rows, codes, shots = self._monitored_rows(n_samples, target)
        if target is not None and codes is None:
            raise ValueError(
                "ACTEncoder.score needs labeled rows of at least 2 classes with at least "
                f"2 rows each; y labels {int(target[1].sum())} of its {n_samples} rows. "
                "Label more rows, or call score(X) for the label-free diagnostic."
            )
        with _device.torch_threads():
            features = self._embed(self._stored_rows(X, rows))
        if codes is not None and shots is not None:
            labels = torch.from_numpy(codes).to(features.device)
            draws = torch.from_numpy(shots).to(features.device)
            return _callbacks.few_shot_nn_accuracy(features, labels, draws)
        return _callbacks.effective_rank(features) / features.shape[1]

    def save(self, path: str | os.PathLike[str], *, optimizer_state: bool = True) -> None:
        """Save the fitted estimator to ``path`` in a format that cannot run code.

        The file holds JSON (parameters, fitted attributes, preprocessing) and tensors
        read back with ``torch.load(weights_only=True)``; load it with
        :func:`skact.load`. A user-supplied ``encoder`` module's weights are saved, but
        not its code: pass the same architecture to :func:`skact.load`. The optimiser
        state is saved too by default, so ``warm_start`` continues where it stopped.

        Parameters
        ----------
        path : str, bytes or path-like
            Destination file (conventionally ``*.skact``); overwritten if it exists.
            A path ending with a separator (``"models/"``) names a folder, so it is
            refused with a ``ValueError`` (an existing file of that name is left
            alone), as is an empty path; bytes are decoded as :func:`os.fsdecode`
            does, as :func:`skact.load` does.
        optimizer_state : bool, default=True
            Save Adam's moments (two values per network parameter, about two thirds
            of the file). False writes a file about a third the size: ``transform``
            gives the same output, and ``warm_start`` or ``partial_fit`` after
            :func:`skact.load` continue from the saved weights with a fresh optimiser
            (Adam's moments start from zero, as in a new fit). Anything but True or
            False is a TypeError.

        See Also
        --------
        skact.load : Load a saved estimator.
        """
        _persistence.save(self, path, optimizer_state=optimizer_state)

    def export(
        self, path: str | os.PathLike[str], format: str | None = None
    ) -> dict[str, Any]:
        """Write the whole feature extractor, preprocessing included, for serving.

        The file maps what a user has to what :meth:`transform` returns (within
        float32 rounding), with no skact needed to run it: an ONNX file for
        onnxruntime (needs the ``skact[export]`` extra: onnx and onnxscript), or a
        ``torch.export`` program (``.pt2``) for :func:`torch.export.load`. The batch
        axis is dynamic. Its inputs:

        - numeric tables: ``X``, float64 ``(n, n_features)``;
        - mixed tables: ``numeric``, float64 ``(n, n_numeric)``, the numeric columns
          in the table's order with NaN for a gap, and ``codes``, int64
          ``(n, n_categorical)``: a value's index in the known categories of its
          column (``categories`` below), ``missing_code`` for a gap, -1 for a value
          unknown to the model. An input without columns is left out;
        - images: ``images``, uint8 ``(n, H, W, C)``, or ``(n, H, W)`` for one
          channel, at the fitted ``image_size``; other sizes are refused by the
          runtime (resize them first, as ``transform`` does: antialiased bilinear,
          rounded to uint8). A model fitted on arrays that are not uint8 maps them
          from ``value_range`` to [0, 255]: do the same before.

        The output is ``features``, float32 ``(n, n_components)``. What the inputs are
        for this model is returned and written beside the file as JSON (``path`` +
        ``".inputs.json"``). A value ``transform`` refuses (infinity, a gap with
        ``handle_missing="error"``) is not checked by the exported program. The
        program computes in float32 on the CPU: where ``transform`` computes in
        bfloat16 (``precision``; by default on a CUDA GPU of compute capability 8 or
        more), its features differ from the program's by that rounding.

        Parameters
        ----------
        path : str or path-like
            Destination, overwritten if it exists.
        format : {"onnx", "pt2"} or None, default=None
            None takes the format from ``path``'s suffix (``.onnx`` or ``.pt2``).

        Returns
        -------
        dict
            The inputs' description: ``kind``, ``inputs`` (``name``, ``dtype``,
            ``shape`` with ``"n"`` for the batch axis, ``columns``), ``output``; for
            mixed tables ``categorical`` (per categorical column: ``name``,
            ``categories``, ``missing_code``); for images ``value_range``.

        Raises
        ------
        ValueError
            An unknown format; a user's ``encoder`` network that ``torch.export``
            cannot trace (the message names it and what to change).
        ImportError
            ONNX without onnx or onnxscript installed.

        See Also
        --------
        transform : The features the exported program computes.

        Examples
        --------
        >>> import numpy as np
        >>> from skact import ACTEncoder
        >>> X = np.random.default_rng(0).normal(size=(64, 5))
        >>> encoder = ACTEncoder(max_iter=1, hidden_layer_sizes=(8,), n_components=4)
        >>> inputs = encoder.fit(X).export("features.pt2")  # doctest: +SKIP
        """
        check_is_fitted(self)
        return _export.export(self, path, format)

    @property
    def _n_features_out(self) -> int:
        """Width of the representation (used by ``get_feature_names_out``)."""
        return int(self._n_components_out)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.non_deterministic = False
        tags.input_tags.categorical = True
        tags.input_tags.allow_nan = self.handle_missing != "error"
        return tags

    # ------------------------------------------------------------------ persistence

    def __getstate__(self) -> dict[str, Any]:
        # object.__getstate__ returns __dict__ itself: pickle a copy.
        return _state.pickled(dict(super().__getstate__()))

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("precision", "auto")  # pickled by a skact without precision
        super().__setstate__(_state.unpickled(state))

    # ------------------------------------------------------------------ internals

    def _objective(self) -> Objective:
        """``objective`` with ACT's settings taken from one place: the estimator's
        ``alpha``, ``adversary`` and ``adversary_momentum`` for the name ``"act"``, an
        instance's own otherwise (a value set where it would be ignored is refused;
        see :func:`~skact.objectives.resolve_objective`)."""
        return resolve_objective(self.objective, self.get_params(deep=False))

    def _read_input(self, X: Any, reset: bool) -> tuple[type[InputAdapter], Any]:
        """``X``'s adapter class and ``X`` read by it (see ``adapters.factory``)."""
        return read_input(X, self, None if reset else self._adapter)

    def _fit(
        self, X: Any, y: Any, epochs: int | str, reset: bool, horizon: bool
    ) -> ACTEncoder:
        # The failure policy is documented in ``fit``.
        rollback = _guards.FitRollback(self, keep=not reset)
        steps_before = 0 if reset else self._step
        continuing = not reset and horizon
        plan: _plan.FitPlan | None = None  # resolved once the adapter is fitted
        started = False  # whether training began (the model is this fit's from then on)
        try:
            _check_shape_params(self.hidden_layer_sizes, self.image_size)
            _check_callbacks(self.callbacks)
            self._objective()  # refuses an ACT setting the objective would ignore
            if not reset:
                self._check_architecture_unchanged()
            adapter_class, X = self._read_input(X, reset=reset)
            if not reset:  # partial_fit, or a warm_start fit, on new data
                self._warn_unfamiliar(X)
            else:
                # Frames: warn, this one, fit or partial_fit, sklearn's wrapper, caller.
                warn_ignored_params(
                    _ignored_params(self, adapter_class), adapter_class.label, 5
                )
            n_samples = _n_samples(X)
            if n_samples < 2:
                raise ValueError(
                    f"ACTEncoder needs at least 2 samples to fit (BatchNorm and the views' "
                    f"cross-correlation are undefined for 1 sample); got {n_samples} "
                    "sample."
                )
            target = _check_labels(y, n_samples)
            if target is not None:
                # Frames: this one, fit or partial_fit, sklearn's wrapper, the caller.
                warn_if_minus_one_ambiguous(target[0], stacklevel=4)
            distributed.setup(self.distributed, self.device)
            with _device.torch_threads(), _guards.deferred_interrupt() as interrupted:
                if reset:
                    self._initialize(X, adapter_class)
                started = True
                plan = self._fit_plan(n_samples, continuing)
                if isinstance(epochs, str):  # max_iter="auto"
                    epochs = plan.max_iter
                with self._adapter.training_context(self.device_):
                    try:
                        self._train(X, target, epochs, horizon, plan, interrupted)
                    except RuntimeError as exc:
                        # Adam's moments are allocated at the first step. CUDA's out of
                        # memory has its own handling (smaller batches) in the trainer.
                        if isinstance(exc, torch.OutOfMemoryError):
                            raise
                        if not _guards.is_allocation_failure(exc):
                            raise
                        n = sum(p.numel() for p in self._networks_parameters())
                        raise self._memory_error(n, _torch_says(exc)) from None
                if interrupted():
                    raise KeyboardInterrupt("ACTEncoder.fit interrupted (Ctrl-C)")
        except (KeyboardInterrupt, NonFiniteLossError) as exc:
            # Keep what this call trained, if it kept any step (every state the trainer
            # keeps passed its divergence check); else go back to before the call.
            trained = started and self._step > steps_before
            rate = self.learning_rate if plan is None else plan.learning_rate
            if trained:
                self.encoder_.eval()
            else:
                rollback.restore()
            if isinstance(exc, KeyboardInterrupt):
                self._warn_interrupted(trained, reset)
                raise
            raise self._diverged(exc, trained, reset, horizon, rate) from None
        except BaseException as exc:
            if started and _guards.keeps_trained_model(exc):
                self.encoder_.eval()
            else:
                rollback.restore()
            raise
        return self

    def _warn_interrupted(self, trained: bool, reset: bool) -> None:
        """Say what an interrupted fit kept (``trained``: steps of this call)."""
        if trained:
            done = _guards.describe_training(self.n_iter_, self._step)
            kept = f"keeping the model trained so far ({done}), usable by transform"
        elif reset:
            kept = "no training step finished: the estimator is left unfitted"
        else:
            kept = "no training step finished: the estimator is left as it was"
        warnings.warn(
            f"ACTEncoder.fit was interrupted; {kept}. The KeyboardInterrupt is raised "
            "again; catch it to continue your script.",
            UserWarning,
            # _warn_interrupted, _fit, fit / partial_fit, sklearn's _fit_context, caller
            stacklevel=5,
        )

    def _diverged(
        self,
        exc: NonFiniteLossError,
        trained: bool,
        reset: bool,
        horizon: bool,
        rate: float | str,
    ) -> NonFiniteLossError:
        """The error of a diverged fit: what happened, what was kept, what to do.

        ``exc``: the trainer's (its message says what it saw); ``trained``: this call
        kept steps; ``reset``: a new model; ``horizon``: ``fit`` (else ``partial_fit``);
        ``rate``: the learning rate in force.
        """
        n = getattr(self, "n_iter_", 0)
        if trained:
            kept = (
                f"the weights of the last sound epoch are kept ({n} epoch"
                f"{'' if n == 1 else 's'} trained)"
            )
        elif reset:
            kept = "no epoch finished soundly: the estimator is left unfitted"
        else:
            kept = "the estimator is left as it was before this call"
        problem = f"ACTEncoder: training diverged in epoch {n + 1} ({exc}); {kept}."
        if exc.at_start and not reset:
            new_model = (
                "fit with warm_start=False (or fit a clone)"
                if horizon
                else "start a new model: clone(estimator).partial_fit(X), or fit(X) "
                "with warm_start=False"
            )
            fix = (
                "The starting weights are the likely cause, not the learning rate: those "
                "of the model this call continues (or its optimizer state), e.g. left by "
                "an earlier fit that diverged; else extreme values in X. To train a new "
                f"model, {new_model}."
            )
            advice = _checks.Advice(problem, "diverged_at_start", {"warm_start": False})
        elif exc.at_start:
            fix = (
                "The learning rate is not the cause: look for extreme values in X (or, "
                "with your own encoder, for an output that overflows)."
            )
            advice = _checks.Advice(problem, "diverged_at_start", {})
        else:
            lower: dict[str, Any] = {"learning_rate": rate}
            # alpha weighs ACT's adversarial term; the baselines have none.
            if isinstance(self.objective, str) and self.objective == "act":
                lower["alpha"] = self.alpha
            elif isinstance(self.objective, ACTLoss):
                lower["objective__alpha"] = self.objective.alpha
            names = " or ".join(f"{p} (now {v})" for p, v in lower.items())
            fix = f"Try a lower {names}, or look for extreme values in X."
            advice = _checks.Advice(problem, "diverged", lower)
        return NonFiniteLossError(f"{problem} {fix}", advice=advice, at_start=exc.at_start)

    def _initialize(self, X: Any, adapter_class: type[InputAdapter]) -> None:
        """Create the adapter, networks and training state from scratch."""
        self.device_ = _device.resolve_device(self.device)
        rng = check_random_state(self.random_state)
        init_seed, aug_seed, shuffle_seed = (int(s) for s in rng.randint(0, 2**31 - 1, 3))
        world = distributed.current(self.distributed)
        if world is not None:
            # Weights come from rank 0 (DDP broadcasts them); views differ per rank.
            self.device_ = world.place(self.device_)
            aug_seed += world.rank
        self._adapter = adapter_class.from_input(X, self, self.device_)
        self._expose_adapter_attributes()
        _log_input(self)
        self._network_name = (
            self._adapter.network_name(self.encoder, self.device_.type)
            if isinstance(self.encoder, str)
            else None
        )
        # Counted on the meta device, before any memory is taken: 10 rows of a million
        # columns need 8 GB of weights and Adam state, which failed deep inside Adam.
        n_parameters = self._network_parameters()
        available = _checks.available_memory(self.device_)
        needed = (n_parameters or 0) * _checks.TRAINING_BYTES_PER_PARAMETER
        if available is not None and needed > available:
            raise self._memory_error(
                n_parameters or 0,
                f"more than the {_bytes(available)} of memory available on "
                f"{self.device_.type} now",
            )
        # The networks are built on the CPU, from the CPU's default generator, seeded
        # alone: torch.manual_seed would also reseed every CUDA device's generator, which
        # fork_rng(devices=[]) does not restore (and covering the devices would
        # initialise CUDA on each one).
        try:
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(init_seed)
                encoder = self._make_encoder(self._adapter.input_shape)
                self._adapter.check_network(encoder)
                width = _output_width(encoder, self._adapter.input_shape)
                projector = self._make_projector(width)
            self._n_components_out = width
            self.encoder_ = self._placed(encoder)
            self.projector_ = projector.to(self.device_) if projector is not None else None
        except RuntimeError as exc:
            if not _guards.is_allocation_failure(exc):
                raise
            raise self._memory_error(n_parameters, _torch_says(exc)) from None
        self._optimizer_state: dict[str, Any] | None = None
        self._adversary_state: dict[str, Any] | None = None
        self._generator_state = _random.make_generator(self.device_, aug_seed).get_state()
        self._shuffle_rng = np.random.default_rng(shuffle_seed)
        self._step = 0
        self._partial_fit_start: int | None = None
        self._fitted_architecture = self._architecture()
        self.n_iter_ = 0
        self.loss_curve_: list[float] = []
        self.validation_loss_curve_: list[float] = []
        self.monitor_curve_: list[float] = []
        self.monitor_name_: str | None = None

    def _network_parameters(self) -> int | None:
        """Parameters of the networks a new fit trains (front end, encoder, projection
        head), counted without building them; None for an ``encoder`` callable."""
        spec, shape = self.encoder, self._adapter.input_shape
        with torch.device("meta"):  # shapes only: no memory, no random numbers
            front = self._adapter.front_end()  # a large vocabulary's embeddings too
        if front is not None:
            shape = (int(cast(int, front.out_features)),)
        if isinstance(spec, nn.Module):
            modules = [front, spec]
        elif isinstance(spec, str):
            with torch.device("meta"):
                body = build_encoder(
                    self._network_name or spec,
                    shape,
                    self.n_components,
                    tuple(self.hidden_layer_sizes),
                )
                modules = [
                    front,
                    body,
                    self._make_projector(int(cast(int, body.out_features))),
                ]
        else:
            return None
        return sum(p.numel() for m in modules if m is not None for p in m.parameters())

    def _networks_parameters(self) -> list[nn.Parameter]:
        """The parameters of the fitted networks (encoder and projection head)."""
        modules = [self.encoder_, self.projector_]
        return [p for m in modules if m is not None for p in m.parameters()]

    def _encoding_batch_size(self) -> int:
        """Rows per batch when encoding without gradients (``transform``, the monitor),
        from ``batch_size`` (:data:`ENCODING_BATCH_SIZE` while it is ``"auto"``)."""
        return _encoding.transform_batch_size(
            self.batch_size if isinstance(self.batch_size, int) else ENCODING_BATCH_SIZE,
            self._adapter.input_shape,
            self.device_,
        )

    def _memory_error(self, n_parameters: int | None, why: str) -> MemoryError:
        """A MemoryError that says what the networks need and what to change."""
        what = "ACTEncoder's networks"
        if n_parameters is not None:
            need = n_parameters * _checks.TRAINING_BYTES_PER_PARAMETER
            what += (
                f" need about {_bytes(need)} to train ({n_parameters:,} parameters, "
                f"{_checks.TRAINING_BYTES_PER_PARAMETER} bytes each: float32 weights, "
                "their gradients and Adam's two moments),"
            )
        advice = "Use a smaller encoder module or a device with more memory."
        if self._network_name == "mlp":  # its width is the user's to change
            with torch.device("meta"):
                front = self._adapter.front_end()
            width = self._adapter.input_shape[0]
            if front is not None:  # the embedded width
                width = int(cast(int, front.out_features))
            sizes = tuple(int(h) for h in self.hidden_layer_sizes)
            first = ""
            if sizes:
                first = f" (its first layer alone is {width:,} x {sizes[0]:,} weights)"
            advice = (
                f"Use smaller hidden_layer_sizes (now {sizes}){first}, "
                f"or fewer columns ({self.n_features_in_:,} now): reduce them first, "
                "e.g. make_pipeline(PCA(n_components=256), ACTEncoder()), or select "
                "features."
            )
        elif isinstance(self.encoder, str):
            advice = "Use a smaller encoder or image_size, or a device with more memory."
        return MemoryError(
            f"{what} {why}. {advice} A smaller batch_size also lowers the memory "
            "training needs."
        )

    def _expose_adapter_attributes(self) -> None:
        """Set the public attributes the adapter defines (``categories_``, ...)."""
        for name, value in self._adapter.fitted_attributes().items():
            setattr(self, name, value)

    def _warn_unfamiliar(self, X: Any) -> None:
        """The adapter's warnings about read input ``X`` unlike the fit's (an adapter
        registered from outside skact may not define ``warn_unfamiliar``: optional)."""
        check = getattr(self._adapter, "warn_unfamiliar", None)
        if check is not None:
            names = getattr(self, "feature_names_in_", None)
            check(X, None if names is None else [str(n) for n in names])

    def _fit_plan(self, n_samples: int, continuing: bool) -> _plan.FitPlan:
        """The settings of a fit of ``n_samples`` rows of the fitted input on
        ``device_`` (all ranks' rows under distributed training), "auto" resolved."""
        return _plan.plan_fit(
            self.get_params(deep=False), self._adapter, n_samples, self.device_, continuing
        )

    def _make_encoder(self, input_shape: tuple[int, ...]) -> nn.Module:
        spec = self.encoder
        front = self._adapter.front_end()  # embeds categorical codes, if any
        if front is not None:
            input_shape = (int(cast(int, front.out_features)),)
        if isinstance(spec, nn.Module):
            encoder = copy.deepcopy(spec)
        elif isinstance(spec, str):
            encoder = build_encoder(
                self._network_name or spec,
                input_shape,
                self.n_components,
                tuple(self.hidden_layer_sizes),
            )
        else:
            encoder = spec(input_shape)
            if not isinstance(encoder, nn.Module):
                raise TypeError(
                    "encoder callable must return a torch.nn.Module, got "
                    f"{type(encoder).__name__}"
                )
        if not isinstance(spec, str):
            width = _user_encoder_width(encoder, input_shape, self._adapter)
        if not isinstance(spec, str) and self.n_components is not None:
            if width != self.n_components:
                raise ValueError(
                    f"the encoder module outputs {width} features but n_components="
                    f"{self.n_components}; set n_components=None or change the module."
                )
        if front is not None:
            encoder = nn.Sequential(front, encoder)
        return encoder

    def _make_projector(self, width: int) -> nn.Module | None:
        if self.projection_dim is None:
            return None
        return ProjectionHead(width, 2 * width, self.projection_dim)

    def _train(
        self,
        X: Any,
        target: tuple[np.ndarray, np.ndarray] | None,
        epochs: int,
        horizon: bool,
        plan: _plan.FitPlan,
        stop_requested: Callable[[], bool] | None = None,
    ) -> None:
        """Run ``epochs`` epochs on ``X`` from the stored training state.

        ``target``: the labels and which rows have one (for the monitor), or None;
        ``plan``: the call's resolved settings; ``stop_requested`` says whether Ctrl-C
        was pressed (see ``_guards``).
        """
        adapter: InputAdapter = self._adapter
        device = self.device_
        world = distributed.current(self.distributed)
        rows, codes, shots = self._monitored_rows(_n_samples(X), target)
        monitored = None
        if world is not None:
            # Every rank follows the same rows, read before X is split into shards.
            monitored = self._stored_rows(X, rows)
            X = world.shard(X)
        # partial_fit on files streams them (a folder larger than memory); else the
        # whole set is stored once, as uint8 for images.
        stream = adapter.streams(X) and not horizon
        data: Any = (
            adapter.stream(X, device)
            if stream
            else _device.to_device(adapter.to_storage(X), device)
        )
        if monitored is None and stream:
            monitored = self._stored_rows(X, rows)
        elif monitored is None:
            monitored = (
                data  # every row: no copy
                if len(rows) == data.shape[0]
                else data.index_select(0, torch.from_numpy(rows).to(device))
            )
        monitor = _callbacks.Monitor(
            functools.partial(self._embed, monitored),
            None if codes is None else torch.from_numpy(codes).to(device),
            keep_best=self.keep_best == "monitor",
            shots=None if shots is None else torch.from_numpy(shots).to(device),
        )
        self.monitor_name_ = monitor.name
        # Clones for this call: the parameter's objects are never run (see callbacks).
        self.callbacks_ = [clone(c) for c in self.callbacks or ()]
        held_out = None
        if self.early_stopping and not stream:
            n_val = max(2, round(self.validation_fraction * data.shape[0]))
            if data.shape[0] < 4:
                raise ValueError(
                    f"early_stopping needs at least 4 samples; got {data.shape[0]}."
                )
            if data.shape[0] - n_val < 2:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} holds out {n_val} "
                    f"of the {data.shape[0]} samples, leaving fewer than the 2 that "
                    "training needs; use a smaller validation_fraction."
                )
            order = torch.from_numpy(self._shuffle_rng.permutation(data.shape[0]))
            held_out, data = (
                data[order[:n_val].to(device)],
                data[order[n_val:].to(device)],
            )
        shard_sizes = None if world is None else tuple(world.gather(data.shape[0]))

        # Stored data is gathered by rows: index_select is several times faster on the
        # CPU than the general indexing of data[idx] (20x for a batch of uint8 images).
        take: Callable[[Any], Tensor] = (
            functools.partial(data.index_select, 0)
            if isinstance(data, Tensor)
            else data.__getitem__
        )

        def view_fn(batch: Tensor, generator: torch.Generator) -> Tensor:
            return adapter.view(batch, batch if stream else data, generator)

        with _freeze.frozen(self.encoder_, self.freeze) as eval_modules:
            trainer = self._make_trainer(
                data.shape[0],
                epochs if horizon else None,
                shard_sizes,
                plan=plan,
                view_fn=view_fn,
                held_out=held_out,
                callbacks=self._make_callbacks(
                    show=not (world is not None and world.rank > 0),
                    auto_epochs=horizon and isinstance(self.max_iter, str),
                    monitor=monitor,
                    held_out=held_out is not None,
                ),
                stop_requested=stop_requested,
                indices_on_device=not stream,
                eval_modules=eval_modules,
            )
            _log_fit_summary(self, trainer, data.shape[0], epochs, held_out)
            try:
                trainer.fit(data.shape[0], take, epochs)
            finally:
                self._save_trainer(trainer)
                trainer.close()
        if world is not None:
            distributed.average_buffers([self.encoder_, self.projector_], world)
        self.encoder_.eval()

    def _make_callbacks(
        self,
        show: bool,
        auto_epochs: bool,
        monitor: _callbacks.Monitor | None = None,
        held_out: bool = False,
    ) -> list[_callbacks.Callback]:
        """The monitor, progress as ``verbose`` asks, the time estimate, early
        stopping, the epochs' log records, then the user's ``callbacks_``.

        ``show``: this process may print (rank 0); ``auto_epochs``: the fit's length
        comes from ``max_iter="auto"``, so a long one warns with the ways to shorten it;
        ``held_out``: the trainer has validation data. The monitor comes first, so that
        the progress bar, the log and the user's callbacks see its value.
        """
        callbacks: list[_callbacks.Callback] = [] if monitor is None else [monitor]
        advice = None
        if auto_epochs and show and self.device_.type == "cpu":
            shorter = self._adapter.speed_advice(self._network_name)
            advice = f"To make it shorter, set {shorter}."
        # Before the bar and the log, which show its time left after each step.
        estimate = _callbacks.TimeEstimate(
            verbose=bool(self.verbose) and show, advice=advice
        )
        callbacks.append(estimate)
        if self.verbose and show:
            callbacks.append(_callbacks.ProgressBar("ACTEncoder", estimate=estimate))
        if self.verbose > 1 and show:
            callbacks.append(
                _callbacks.EpochLog(first_epoch=self.n_iter_ + 1, estimate=estimate)
            )
        if self.early_stopping:
            callbacks.append(
                _callbacks.EarlyStopping(
                    self.n_iter_no_change,
                    self.tol,
                    # keep_best="monitor": the monitor's epoch is kept, not this one's.
                    restore_best=self.keep_best == "last",
                )
            )
        name = None if monitor is None else monitor.name
        # One record per epoch, read by the log and every user callback alike.
        records = _callbacks.EpochRecords(name)
        callbacks.append(records)
        if show:
            callbacks.append(_callbacks.LogEpochs(records))
        for callback in getattr(self, "callbacks_", []):
            if isinstance(callback, public_callbacks.EarlyStopping):
                callbacks.append(callback._trainer_callback(str(name), held_out))
            if type(callback) is not public_callbacks.EarlyStopping:
                # A subclass of EarlyStopping keeps its own hooks too.
                callbacks.append(_callbacks.UserCallback(callback, self, records))
        return callbacks

    def _monitored_rows(
        self, n_samples: int, target: tuple[np.ndarray, np.ndarray] | None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """The rows the monitor (and ``score``) follow, their class codes and the
        draws of the few-shot estimate's examples (see ``_callbacks.shot_examples``)."""
        generator = _random.make_generator(self.device_, 0)
        generator.set_state(self._generator_state)
        # A stream of its own: drawing the rows changes nothing in the training.
        seed = _random.derived_seed(generator, stream=2)
        y, labeled = (None, None) if target is None else target
        rows, codes = _callbacks.monitored_rows(n_samples, y, labeled, seed)
        shots = None if codes is None else _callbacks.shot_examples(codes, seed + 1)
        return rows, codes, shots

    def _stored_rows(self, X: Any, rows: np.ndarray) -> Tensor:
        """``rows`` of ``X`` (as read by the adapter), stored on ``device_``."""
        stored = self._adapter.to_storage(X[rows])
        return _device.to_device(stored, self.device_)

    def _embed(self, stored: Tensor) -> Tensor:
        """The representation of stored rows on ``device_``, float32, as ``transform``
        computes it (:func:`skact._encoding.encode_batches`)."""
        batches = stored.split(self._encoding_batch_size())
        encoded = _encoding.encode_batches(
            self.encoder_,
            batches,
            self._adapter.to_model,
            self.device_,
            self._autocast_dtype(transform=True),
        )
        return torch.cat(list(encoded))

    def _autocast_dtype(self, *, transform: bool = False) -> torch.dtype | None:
        """The forward passes' autocast dtype: ``precision`` resolved for ``device_``
        and the input kind; training's and validation's, or with ``transform``
        ``transform``'s and the monitor's (float32 on a CPU for ``"auto"``)."""
        return _device.autocast_dtype(
            self.device_, self.precision, self._adapter.kind, transform=transform
        )

    def _placed(self, encoder: nn.Module) -> nn.Module:
        """``encoder`` on ``device_``, as the adapter runs it fastest (fit and load)."""
        return self._adapter.place(encoder, self.device_)

    def _architecture(self) -> dict[str, Any]:
        """The parameters that shape the networks (and the stored input), comparable."""
        encoder = self.encoder
        if isinstance(encoder, nn.Module):
            encoder = f"{type(encoder).__module__}.{type(encoder).__qualname__}"
        return {
            "encoder": encoder,
            "n_components": self.n_components,
            "hidden_layer_sizes": tuple(int(w) for w in np.ravel(self.hidden_layer_sizes)),
            "projection_dim": self.projection_dim,
            "image_size": self.image_size,
            "image_normalization": (
                self.image_normalization
                if isinstance(self.image_normalization, str)
                # A saved (mean, std) of tuples comes back as lists.
                else tuple(
                    tuple(float(v) for v in np.ravel(part))
                    for part in self.image_normalization
                )
            ),
        }

    def _check_architecture_unchanged(self) -> None:
        """warm_start and partial_fit continue the fitted networks: refuse parameters
        that describe other networks instead of ignoring them."""
        fitted = getattr(self, "_fitted_architecture", None)
        if fitted is None:  # fitted by an skact that did not record it
            return
        now = self._architecture()
        # A model fitted before a parameter existed was fitted with its default.
        changed = [name for name in now if now[name] != fitted.get(name, now[name])]
        if changed:
            was = ", ".join(f"{name}={fitted[name]!r}" for name in changed)
            asked = ", ".join(f"{name}={now[name]!r}" for name in changed)
            raise ValueError(
                f"warm_start and partial_fit continue the fitted network, built with "
                f"{was}; the parameters now say {asked}. Set warm_start=False (or fit "
                "a clone) to train a new network, or set the parameters back."
            )

    def _make_trainer(
        self,
        n_samples: int,
        epochs: int | None,
        shard_sizes: tuple[int, ...] | None = None,
        *,
        view_fn: _training.ViewFn,
        plan: _plan.FitPlan | None = None,
        held_out: Tensor | None = None,
        callbacks: Sequence[_callbacks.Callback] = (),
        stop_requested: Callable[[], bool] | None = None,
        indices_on_device: bool = True,
        eval_modules: Sequence[nn.Module] = (),
    ) -> _training.Trainer:
        """A trainer continuing the stored state, with the parameters set now.

        ``n_samples`` rows on this process (``shard_sizes``: every rank's, under
        data-parallel training); ``epochs`` of a ``fit`` call, None for ``partial_fit``;
        ``held_out``: rows for the early-stopping validation loss; the other arguments
        are the :class:`~skact._training.Trainer`'s, but ``plan``: the call's resolved
        settings (its learning rate and warm-up; its batch size for the rows trained
        on, which early stopping's held-out rows and data parallelism change; None: a
        fresh fit's).
        """
        n_total = n_samples if shard_sizes is None else sum(shard_sizes)
        if plan is None or n_total != plan.n_samples:  # the rows trained on
            plan = self._fit_plan(n_total, plan is not None and plan.continuing)
        params = list(self.encoder_.parameters())
        if self.projector_ is not None:
            params += list(self.projector_.parameters())
        learning_rate = plan.learning_rate
        optimizer = _training.make_adam(
            params, learning_rate, self.weight_decay, self.device_
        )
        if self._optimizer_state is not None:
            _training.load_optimizer_state(optimizer, self._optimizer_state)
        criterion = make_objective(self._objective())
        adversary = getattr(criterion, "adversary", None)
        if adversary is not None and self._adversary_state is not None:
            adversary.load_state_dict(self._adversary_state)
        batch_size = plan.batch_size
        steps_per_epoch = _training.n_batches(
            n_total, batch_size, None if shard_sizes is None else min(shard_sizes)
        )
        # Every fit call runs its own schedule (warm_start too; "auto" continues without
        # warm-up); a run of partial_fit calls shares one, with no end.
        if epochs is None:
            if self._partial_fit_start is None:
                self._partial_fit_start = self._step
            start, total = self._partial_fit_start, None
            warmup = _training.PARTIAL_FIT_WARMUP_STEPS
        else:
            self._partial_fit_start = None
            start, total = self._step, epochs * steps_per_epoch
            warmup = min(500, max(1, total // 10))
            if not plan.warmup_to_peak:
                warmup = 0  # a continued "auto" fit starts at its (lower) peak
        generator = _random.make_generator(self.device_, 0)
        generator.set_state(self._generator_state)
        world = distributed.current(self.distributed)
        return _training.Trainer(
            encoder=self.encoder_,
            projector=self.projector_,
            criterion=criterion,
            optimizer=optimizer,
            view_fn=view_fn,
            n_views=self.n_views,
            batch_size=batch_size,
            learning_rate=learning_rate,
            warmup_steps=warmup,
            device=self.device_,
            generator=generator,
            shuffle_rng=self._shuffle_rng,
            step=self._step,
            schedule_start=start,
            total_steps=total,
            amp_dtype=self._autocast_dtype(),
            stop_requested=stop_requested,
            strategy=(
                distributed.DataParallel(world, shard_sizes)
                if world is not None and shard_sizes is not None
                else _training.SingleProcess()
            ),
            adversary=adversary,
            indices_on_device=indices_on_device,
            validation=(
                None
                if held_out is None
                else self._validation(held_out, _random.derived_seed(generator))
            ),
            callbacks=callbacks,
            epoch=self.n_iter_,
            eval_modules=eval_modules,
        )

    def _save_trainer(self, trainer: _training.Trainer) -> None:
        """Keep the trainer's state and its epochs' losses (also after a failure)."""
        with _guards.sigint_held():  # a Ctrl-C now would leave the record half written
            self.n_iter_ = trainer.epoch
            self.loss_curve_ += [logs["loss"] for logs in trainer.history]
            self.validation_loss_curve_ += [
                logs["validation_loss"]
                for logs in trainer.history
                if "validation_loss" in logs
            ]
            # NaN for an epoch whose estimate a Ctrl-C cut short: one value per epoch.
            self.monitor_curve_ += [
                logs.get(str(self.monitor_name_), math.nan) for logs in trainer.history
            ]
            self._optimizer_state = trainer.optimizer.state_dict()
            adversary = getattr(trainer.criterion, "adversary", None)
            self._adversary_state = None if adversary is None else adversary.state_dict()
            self._generator_state = trainer.generator.get_state()
            self._step = trainer.step

    def _validation(self, data: Tensor, seed: int) -> _training.Validation:
        """The early-stopping loss on held-out ``data``: fixed views drawn from
        ``seed``, the batch estimate of ``G``, batches of ``transform``'s size."""
        adapter = self._adapter

        def view_fn(batch: Tensor, generator: torch.Generator) -> Tensor:
            return adapter.view(batch, data, generator)

        criterion = make_objective(self._objective(), held_out=True)
        batch_size = self._encoding_batch_size()
        return _training.Validation(data, view_fn, criterion, seed, batch_size)


_persistence.ESTIMATORS[_persistence.FORMAT] = ACTEncoder


def resolved_settings(estimator: ACTEncoder, X: Any) -> dict[str, Any]:
    """What a ``fit`` of ``estimator`` on ``X`` would use, with every ``"auto"`` resolved.

    ``X`` is read as ``fit`` reads it, but image files only as far as their headers
    (at most 4,096 of them, evenly spaced) and no statistics are measured; nothing is
    trained and ``estimator`` is left unchanged. A fitted ``estimator`` with
    ``warm_start=True`` gets the values of a continued fit (see ``warm_start``: a
    tenth of the ``"auto"`` learning rate, a quarter of the ``"auto"`` epochs). The
    device is the one ``fit`` would resolve (``device="auto"``: CUDA, else MPS, else
    the CPU), and the ``"auto"`` values follow the rule of the user guide's page on
    images. The ``skact`` command prints these values before it trains.

    Parameters
    ----------
    estimator : ACTEncoder
    X : array-like or images
        Training data, as ``fit`` takes it.

    Returns
    -------
    dict
        ``n_samples``, ``kind`` (``"table"``, ``"mixed table"`` or ``"images"``),
        ``input_shape``, ``encoder`` (the network's name, or the class of a module),
        ``max_iter``, ``batch_size``, ``learning_rate``, ``corruption_rate`` (a float
        for tables, None for images), ``device`` (a str), ``precision``
        (``"float32"`` or ``"bfloat16"``: training's forward passes' autocast),
        ``transform_precision`` (the same for ``transform``) and ``channels_last``
        (whether the network runs in that memory format).

    Examples
    --------
    >>> import numpy as np
    >>> from skact import ACTEncoder
    >>> photos = np.zeros((2000, 64, 64, 3), dtype=np.uint8)
    >>> got = resolved_settings(ACTEncoder(device="cpu"), photos)
    >>> got["encoder"], got["input_shape"], got["max_iter"], got["batch_size"]
    ('convnet', (3, 32, 32), 20, 100)
    """
    # A clone: reading X records feature names on the estimator that reads it.
    probe = clone(estimator)
    _check_shape_params(probe.hidden_layer_sizes, probe.image_size)
    adapter_class, X = probe._read_input(X, reset=True)
    device = _device.resolve_device(probe.device)
    world = distributed.current(probe.distributed)
    if world is not None:
        device = world.place(device)
    adapter = adapter_class.from_input(X, probe, device, measure=False)
    n_samples = _n_samples(X)  # every rank's, under distributed training
    # A fitted estimator with warm_start continues: "auto" scales its schedule.
    continuing = estimator.warm_start and hasattr(estimator, "encoder_")
    plan = _plan.plan_fit(
        estimator.get_params(deep=False), adapter, n_samples, device, continuing
    )
    return {
        "n_samples": plan.n_samples,
        "kind": plan.kind,
        "input_shape": plan.input_shape,
        "encoder": plan.network,
        "max_iter": plan.max_iter,
        "batch_size": plan.batch_size,
        "learning_rate": plan.learning_rate,
        "corruption_rate": _views_params(adapter).get("corruption_rate"),
        "device": str(plan.device),
        "precision": plan.compute.precision,
        "transform_precision": plan.compute.transform_precision,
        "channels_last": plan.compute.channels_last,
    }


def _views_params(adapter: InputAdapter) -> dict[str, Any]:
    """The parameters of the views a fit draws, as the views declare them (a resolved
    :class:`~skact.augment.TabularAugment` or an ImageAugment); none for a callable."""
    views = getattr(adapter, "augment", None)
    return views.get_params() if isinstance(views, ParamsMixin) else {}


def _ignored_params(
    estimator: ACTEncoder, adapter_class: type[InputAdapter]
) -> dict[str, Any]:
    """The parameters of ``estimator`` set away from their defaults that input of
    ``adapter_class``'s kind does not read (its ``ignored_params``)."""
    defaults = inspect.signature(type(estimator).__init__).parameters
    out = {}
    for name in getattr(adapter_class, "ignored_params", ()):
        value, default = getattr(estimator, name), defaults[name].default
        if value is default or (isinstance(value, str) and value == default):
            continue
        out[name] = value
    return out


def _check_callbacks(callbacks: Any) -> None:
    """Refuse a ``callbacks`` item that is not a :class:`skact.callbacks.Callback`
    (the list itself is checked by ``_parameter_constraints``)."""
    for i, callback in enumerate(callbacks or ()):
        if not isinstance(callback, public_callbacks.Callback):
            raise TypeError(
                f"callbacks[{i}] is {callback!r} ({type(callback).__name__}); each "
                "callback must be an instance of skact.callbacks.Callback, whose "
                "get_params lets clone and GridSearchCV copy it. Pass an instance of a "
                "subclass of it that overrides the hooks you need."
            )


def _log_input(estimator: ACTEncoder) -> None:
    """Log how a new model reads its input: the conversions that ``fit`` chose."""
    if not logger.isEnabledFor(logging.INFO):
        return
    said = estimator._adapter.describe_reading(estimator)
    logger.info("ACTEncoder: the input is read as %s", said)


def _log_fit_summary(
    estimator: ACTEncoder,
    trainer: _training.Trainer,
    n_samples: int,
    epochs: int,
    held_out: Tensor | None,
) -> None:
    """Log what this call trains, and what each ``"auto"`` parameter resolved to."""
    if not logger.isEnabledFor(logging.INFO):
        return
    adapter = estimator._adapter
    network = estimator._network_name or type(estimator.encoder_).__name__
    logger.info(
        "ACTEncoder: training %d epoch%s on %d samples (%s of shape %s)%s: %s network "
        "of width %d, batch size %d, peak learning rate %.3g, device %s, %d callback%s",
        epochs,
        "" if epochs == 1 else "s",
        n_samples,
        adapter.kind,
        tuple(adapter.input_shape),
        "" if held_out is None else f", {held_out.shape[0]} held out",
        network,
        estimator._n_components_out,
        trainer.batch_size,
        trainer.learning_rate,
        estimator.device_,
        len(estimator.callbacks_),
        "" if len(estimator.callbacks_) == 1 else "s",
    )
    resolved = {
        "encoder": network,
        "batch_size": trainer.batch_size,
        "learning_rate": trainer.learning_rate,
        "device": str(estimator.device_),
        "corruption_rate": _views_params(adapter).get("corruption_rate"),
    }
    if trainer.total_steps is not None:  # fit, not partial_fit: max_iter applies
        resolved["max_iter"] = epochs
    auto = {
        k: v
        for k, v in resolved.items()
        if v is not None
        and isinstance(getattr(estimator, k), str)
        and getattr(estimator, k) == "auto"
    }
    if auto:
        shown = ", ".join(f"{k}={v!r}" for k, v in auto.items())
        logger.info("ACTEncoder: 'auto' resolved to %s", shown)
    compute = _device.compute_settings(estimator.device_, adapter.kind, estimator.precision)
    logger.info(
        "ACTEncoder: training's forward passes in %s, transform's in %s "
        "(precision=%s on %s)%s",
        compute.precision,
        compute.transform_precision,
        estimator.precision,
        estimator.device_,
        ", channels_last memory format" if compute.channels_last else "",
    )


def _n_samples(X: Any) -> int:
    return len(X)


def _check_labels(y: Any, n_samples: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``y`` (one label per row, or None) as labels and which rows carry one."""
    if y is None:
        return None
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.ravel()
    if labels.ndim != 1:
        raise ValueError(
            f"y should hold one class label per row of X; got an array of shape "
            f"{labels.shape}. Pass a 1-d y, with -1 for the rows without a label."
        )
    if len(labels) != n_samples:
        raise ValueError(
            f"y has {len(labels)} labels but X has {n_samples} rows; pass one label "
            "per row of X, with -1 for the rows without one."
        )
    return semi_supervised_target(labels)


def _check_shape_params(hidden_layer_sizes: Any, image_size: Any) -> None:
    """Check the values inside ``hidden_layer_sizes`` and ``image_size``, which
    ``_parameter_constraints`` can only check to be an array-like and a tuple."""

    def positive_int(value: Any) -> bool:
        integer = isinstance(value, Integral) and not isinstance(value, bool)
        return integer and int(value) >= 1

    sizes = (
        hidden_layer_sizes
        if isinstance(hidden_layer_sizes, np.ndarray)
        else np.asarray(list(hidden_layer_sizes), dtype=object)
    )
    if sizes.ndim != 1 or not all(positive_int(v) for v in sizes.tolist()):
        raise InvalidParameterError(
            "The 'hidden_layer_sizes' parameter of ACTEncoder must be a sequence of "
            "positive integers (the widths of the hidden layers); got "
            f"{hidden_layer_sizes!r}."
        )
    if isinstance(image_size, tuple) and not (
        len(image_size) == 2 and all(positive_int(v) for v in image_size)
    ):
        raise InvalidParameterError(
            "The 'image_size' parameter of ACTEncoder must be a positive int or a "
            f"(height, width) pair of positive ints; got {image_size!r}."
        )


def _bytes(n: int) -> str:
    """``n`` bytes for people: ``'8.2 GB'``, ``'3.1 MB'``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _torch_says(exc: BaseException) -> str:
    """torch's allocation failure, on one line, without its advice for CUDA settings."""
    text = " ".join(str(exc).split())
    return f"and torch could not allocate the memory ({text[:200]})"


def _user_encoder_width(
    module: nn.Module, input_shape: tuple[int, ...], adapter: InputAdapter
) -> int:
    """Representation width of a user's ``encoder=`` module, from a forward pass; a
    ValueError naming both shapes when the module cannot take the adapter's input.

    torch's own error ("mat1 and mat2 shapes cannot be multiplied") names neither the
    data nor the layer, and came only at the first training step.
    """
    try:
        return _output_width(module, input_shape, probe=True)
    except RuntimeError as exc:
        first = next(
            (
                m
                for m in module.modules()
                if isinstance(m, nn.Linear | nn.modules.conv._ConvNd)
                and not isinstance(m, nn.modules.lazy.LazyModuleMixin)
            ),
            None,
        )
        layer = "" if first is None else f"; its first layer is {first}"
        raise ValueError(
            f"the encoder module cannot take this input: it gets "
            f"{adapter.describe_input()}{layer} (torch says: "
            f"{' '.join(str(exc).split())}). Build the module for that input, or pass "
            "a callable, encoder=lambda input_shape: ..., which ACTEncoder calls with "
            f"the input shape {tuple(input_shape)}."
        ) from None


def _output_width(
    module: nn.Module, input_shape: tuple[int, ...], *, probe: bool = False
) -> int:
    """Representation width of ``module``: its ``out_features`` or (always with
    ``probe``) a forward pass on zeros."""
    width = getattr(module, "out_features", None)
    if isinstance(width, int) and not probe:
        return width
    was_training = module.training
    module.eval()
    with torch.no_grad():
        out = module(torch.zeros((2, *input_shape)))
    module.train(was_training)
    if out.ndim != 2:
        raise ValueError(
            f"the encoder must return a 2-d (n_samples, width) tensor, got shape "
            f"{tuple(out.shape)}"
        )
    return int(out.shape[1])
