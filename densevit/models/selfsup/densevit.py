"""DenseViT: a ViT trained with global + dense contrastive learning."""
import logging
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.logging import print_log
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from densevit.registry import MODELS
from ..utils import KeyEncoderEMA, effective_dims


def _build(cfg: Union[dict, nn.Module, None]) -> Optional[nn.Module]:
    # Built here with DenseViT's registry (which falls back to mmpretrain's),
    # so `type='DenseProjectionNeck'` resolves without a default scope.
    if cfg is None or isinstance(cfg, nn.Module):
        return cfg
    return MODELS.build(cfg)


def _with_default(cfg: Union[dict, nn.Module, None], key: str,
                  value) -> Union[dict, nn.Module, None]:
    """``cfg`` with ``key`` set to ``value`` unless the config gives it:
    channel counts are derived once, from the module that defines them."""
    if not isinstance(cfg, dict) or value is None or key in cfg:
        return cfg
    return dict(cfg, **{key: value})


@MODELS.register_module()
class DenseViT(BaseSelfSupervisor):
    """Online ViT + projection neck, its momentum copy, and the losses.

    One model, two modes. Without ``head`` it is self-supervised DenseCL on
    a ViT: ``loss_global`` (MoCo InfoNCE on the CLS embedding) and
    ``loss_dense`` (per-patch InfoNCE between matched locations). With a
    ``head`` (mmpretrain ``LinearClsHead`` on the CLS token) it trains
    jointly and adds ``loss_cls`` from the labels.

    The query path (view 1) runs through the online encoder with gradients;
    the key path (view 2) through :attr:`key_encoder`, a
    :class:`KeyEncoderEMA` of the online backbone + neck (its copies are
    :attr:`key_backbone` / :attr:`key_neck`). In a Runner, hooks drive the
    state that changes between steps: ``MomentumUpdateHook`` calls
    :meth:`momentum_update` after each optimizer step, ``QueueUpdateHook``
    :meth:`update_queues` with the keys the losses expose, and
    ``LossWeightWarmupHook`` sets :attr:`dense_weight_scale` and the dense
    loss's ``geometric_only``. A Runner-driven step without the first two,
    or without the third while ``dense_warmup_iters`` or
    ``geometric_warmup_iters`` is above 0, fails at the first step (see
    :meth:`parse_losses`).

    Args:
        backbone (dict): ``DenseViTBackbone`` config.
        neck (dict): ``DenseProjectionNeck`` config; ``in_channels``
            defaults to the backbone's ``embed_dims``.
        dense_loss (dict): ``DenseContrastiveLoss`` config; ``feat_dim``
            defaults to the neck's ``out_channels``.
        global_loss (dict): ``GlobalContrastiveLoss`` config; ``feat_dim``
            likewise.
        head (dict, optional): classification head on the CLS token, e.g.
            ``dict(type='LinearClsHead', num_classes=6)``; ``in_channels``
            defaults to the backbone's ``embed_dims``. Defaults to None
            (self-supervised only).
        predictor (dict, optional): an MLP on the query path only, after
            the neck (MoCo v3 / BYOL): the losses compare
            ``predictor(neck(view 1))`` with the key encoder's
            ``neck(view 2)``; features, keys and the key encoder are the
            neck's. A ``DenseProjectionNeck`` config (its two MLPs predict
            the global and every dense embedding); ``in_channels`` and
            ``out_channels`` default to the neck's ``out_channels``.
            Defaults to None (no predictor: DenseCL, MoCo v2).
        loss_lambda (float): λ in ``(1-λ)·global + λ·dense``, in [0, 1].
            Defaults to 0.5 (DenseCL).
        dense_warmup_iters (int): the first iterations train the global
            loss alone (DenseCL's warm-up: matches on untrained backbone
            features are noise); ``LossWeightWarmupHook`` applies it.
            Defaults to 0 (no warm-up).
        geometric_warmup_iters (int): during the first iterations the dense
            positive of each view-1 patch is the view-2 cell that the crop
            geometry puts it in (``DenseContrastiveLoss``'s geometric
            positive alone), not the backbone argmax, which on an untrained
            backbone is noise; from then on the loss's own positives.
            Counts from the first iteration, so iterations inside
            ``dense_warmup_iters`` (dense loss off) count too. Needs the
            dense loss's ``match_window`` (the geometry);
            ``LossWeightWarmupHook`` applies it. Defaults to 0 (none).
        cls_loss_weight (float): weight of ``loss_cls``. Defaults to 1.
        momentum (float): EMA momentum of the key encoder in mmengine's
            convention, the share of the ONLINE weights taken per update:
            ``key = (1-momentum)·key + momentum·online``, in (0, 1). 0.001
            keeps 99.9%. Defaults to 0.001 (MoCo, mmpretrain's DenseCL).
        end_momentum (float, optional): With a value, the momentum follows
            mmpretrain's ``CosineEMA`` cosine from ``momentum`` down to
            ``end_momentum`` at the last iteration (BYOL; the base configs
            use 0.0). Defaults to None (constant ``momentum``).
        symmetric_loss (bool): Each view is the query once (the two
            directions averaged), as in MoCo v3 / BYOL; costs a second
            forward of both encoders. Defaults to False (DenseCL: view 1
            queries, view 2 keys).
        data_preprocessor (dict, optional): defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict, optional): initialisation config.
    """

    #: The hooks a Runner-driven training of DenseViT needs; each adds its
    #: name to :attr:`driving_hooks` in its ``before_train``.
    REQUIRED_HOOKS = ('QueueUpdateHook', 'MomentumUpdateHook')

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 dense_loss: dict = dict(type='DenseContrastiveLoss'),
                 global_loss: dict = dict(type='GlobalContrastiveLoss'),
                 head: Optional[dict] = None,
                 predictor: Optional[dict] = None,
                 loss_lambda: float = 0.5,
                 dense_warmup_iters: int = 0,
                 geometric_warmup_iters: int = 0,
                 cls_loss_weight: float = 1.0,
                 momentum: float = 0.001,
                 end_momentum: Optional[float] = None,
                 symmetric_loss: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if not 0.0 <= loss_lambda <= 1.0:
            raise ValueError(f'DenseViT `loss_lambda` must be in [0, 1], got '
                             f'{loss_lambda!r}. Fix: 0.5 weighs both losses '
                             'equally (DenseCL).')
        for name, value in (('dense_warmup_iters', dense_warmup_iters),
                            ('geometric_warmup_iters',
                             geometric_warmup_iters)):
            if (isinstance(value, bool) or not isinstance(value, int)
                    or value < 0):
                raise ValueError(
                    f'DenseViT `{name}` must be an int >= 0 (0: no '
                    f'warm-up), got {value!r}.')
        backbone = _build(backbone)
        embed_dims = getattr(backbone, 'embed_dims', None)
        neck = _build(_with_default(neck, 'in_channels', embed_dims))
        out_channels = getattr(neck, 'out_channels', None)
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=_build(_with_default(head, 'in_channels', embed_dims)),
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.dense_loss = _build(
            _with_default(dense_loss, 'feat_dim', out_channels))
        self.global_loss = _build(
            _with_default(global_loss, 'feat_dim', out_channels))
        self.predictor = _build(
            _with_default(
                _with_default(predictor, 'in_channels', out_channels),
                'out_channels', out_channels))
        self._check_dimensions()
        if (geometric_warmup_iters
                and getattr(self.dense_loss, 'match_window', None) is None):
            raise ValueError(
                'DenseViT `geometric_warmup_iters` needs the crop geometry, '
                f'got geometric_warmup_iters={geometric_warmup_iters} with '
                'dense_loss.match_window=None. Fix: set '
                'dense_loss=dict(match_window=1), or geometric_warmup_iters=0.')
        self.dense_warmup_iters = dense_warmup_iters
        self.geometric_warmup_iters = geometric_warmup_iters

        self.loss_lambda = float(loss_lambda)
        #: Factor on λ set by ``LossWeightWarmupHook`` (0 while the dense
        #: loss warms up); 1 outside a warm-up.
        self.dense_weight_scale = 1.0
        self.cls_loss_weight = float(cls_loss_weight)
        self.symmetric_loss = bool(symmetric_loss)
        #: Names of the hooks driving this model in the current run.
        self.driving_hooks = set()
        self._warned_no_geometry = False

        self.key_encoder = KeyEncoderEMA(
            self._online_encoder(), momentum, end_momentum)

    def _check_dimensions(self) -> None:
        embed = getattr(self.backbone, 'embed_dims', None)
        neck_in = getattr(self.neck, 'in_channels', None)
        if embed is not None and neck_in is not None and embed != neck_in:
            raise ValueError(
                f'neck.in_channels={neck_in} but the backbone embeds '
                f'{embed} channels. Fix: set neck.in_channels={embed}.')
        out = getattr(self.neck, 'out_channels', None)
        for name in ('dense_loss', 'global_loss'):
            feat_dim = getattr(getattr(self, name), 'feat_dim', None)
            if out is not None and feat_dim is not None and feat_dim != out:
                raise ValueError(
                    f'{name}.feat_dim={feat_dim} but the neck outputs {out} '
                    f'channels. Fix: set {name}.feat_dim={out} (or '
                    f'neck.out_channels={feat_dim}).')
        if self.predictor is not None and out is not None:
            pred_in = getattr(self.predictor, 'in_channels', None)
            pred_out = getattr(self.predictor, 'out_channels', None)
            if (pred_in, pred_out) != (out, out):
                raise ValueError(
                    f'predictor maps {pred_in} to {pred_out} channels but it '
                    f'must map the neck output ({out} channels) to itself. '
                    'Fix: leave predictor.in_channels and '
                    'predictor.out_channels unset (DenseViT derives them).')
        head_in = getattr(self.head, 'in_channels', None)
        if embed is not None and head_in is not None and head_in != embed:
            raise ValueError(
                f'head.in_channels={head_in} but the backbone CLS token has '
                f'{embed} channels. Fix: set head.in_channels={embed}.')

    # ------------------------------------------------------------------
    # momentum encoder and queues (driven by hooks)
    # ------------------------------------------------------------------
    def _online_encoder(self) -> nn.Sequential:
        # Built per call, not stored: a stored container would register the
        # online modules a second time in the state dict.
        return nn.Sequential(
            OrderedDict(backbone=self.backbone, neck=self.neck))

    @property
    def key_backbone(self) -> nn.Module:
        """The key encoder's backbone (``key_encoder.module.backbone``)."""
        return self.key_encoder.module.backbone

    @property
    def key_neck(self) -> nn.Module:
        """The key encoder's neck (``key_encoder.module.neck``)."""
        return self.key_encoder.module.neck

    @property
    def current_loss_lambda(self) -> float:
        """The λ of the next :meth:`loss`: ``loss_lambda`` scaled by the
        warm-up's :attr:`dense_weight_scale`."""
        return self.loss_lambda * self.dense_weight_scale

    #: Key-encoder names of checkpoints written before the encoder became a
    #: :class:`KeyEncoderEMA`, and where they live now.
    _OLD_KEY_PREFIXES = {'key_backbone.': 'key_encoder.module.backbone.',
                         'key_neck.': 'key_encoder.module.neck.'}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Load checkpoints of the earlier layout (``key_backbone.*`` /
        ``key_neck.*``) into :attr:`key_encoder`; its step count then
        restarts at 0, which only matters for a cosine momentum."""
        renamed = False
        for old, new in self._OLD_KEY_PREFIXES.items():
            for key in [k for k in state_dict if k.startswith(prefix + old)]:
                state_dict[prefix + new + key[len(prefix + old):]] = \
                    state_dict.pop(key)
                renamed = True
        steps = prefix + 'key_encoder.steps'
        if renamed and steps not in state_dict:
            # Supplied, so that a strict load accepts the earlier layout.
            state_dict[steps] = torch.zeros_like(self.key_encoder.steps)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def init_weights(self) -> None:
        """Initialise the online encoder, then start the key encoder equal."""
        super().init_weights()
        self.copy_online_to_key()

    @torch.no_grad()
    def copy_online_to_key(self) -> None:
        """Make the key encoder an exact copy of the online encoder."""
        self.key_encoder.module.load_state_dict(
            self._online_encoder().state_dict())

    @torch.no_grad()
    def momentum_update(self, step: Optional[int] = None) -> None:
        """EMA-update the key encoder towards the online one.

        Args:
            step (int, optional): Number of finished training iterations
                (``MomentumUpdateHook`` passes ``runner.iter + 1``), for the
                cosine schedule (``end_momentum``); see
                :meth:`KeyEncoderEMA.update_parameters`.
        """
        self.key_encoder.update_parameters(self._online_encoder(), step)

    @torch.no_grad()
    def update_queues(self) -> None:
        """Enqueue the keys of the last ``loss`` call into both queues."""
        self.global_loss.update_queue()
        self.dense_loss.update_queue()

    # ------------------------------------------------------------------
    # forward modes
    # ------------------------------------------------------------------
    def forward(self,
                inputs: Union[Tensor, List[Tensor]],
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        """The Runner's entry point.

        - 'tensor': ``(cls (B, C), patches (B, C, H, W), dense (B, H, W, D))``
          of the first view;
        - 'loss': a dict of losses (see :meth:`loss`);
        - 'predict': data samples with features (see :meth:`predict`).
        """
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            cls, patches, _, dense = self._encode(
                self._split_views(inputs)[0])
            return cls, patches, dense.permute(0, 2, 3, 1)
        raise ValueError(f"Invalid mode {mode!r}: use 'tensor', 'loss' or "
                         "'predict'.")

    def extract_feat(self, inputs: Tensor) -> Tuple[Tensor, Tensor]:
        """Online backbone features ``(cls (B, C), patches (B, C, H, W))``."""
        return self.backbone(inputs)

    def _encode(self, image: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        cls, patches = self.backbone(image)
        global_emb, dense = self.neck((cls, patches))
        return cls, patches, global_emb, dense

    @staticmethod
    def _split_views(inputs, training: bool = False) -> List[Tensor]:
        """The batch's views as a list: one or two for inference; for
        training views 1 and 2, then any local crops (multi-crop)."""
        views = list(inputs) if isinstance(inputs, (list, tuple)) \
            else [inputs]
        if training and len(views) < 2:
            raise ValueError(
                'DenseViT needs 2 views per image for training (and '
                f'optionally local crops), got {len(views)}. Fix: use the '
                'two-view pipeline (TwoViewCrop + PackDenseInputs).')
        if len(views) >= 2 and views[0].shape != views[1].shape:
            raise ValueError(
                'The two views must have the same batch size and image size, '
                f'got {tuple(views[0].shape)} and {tuple(views[1].shape)}. '
                'Fix: give TwoViewCrop one `size` for both views.')
        local_shapes = {tuple(view.shape) for view in views[2:]}
        if len(local_shapes) > 1 or any(
                shape[0] != views[0].shape[0] for shape in local_shapes):
            raise ValueError(
                'The local crops must share one batch size (that of the '
                f'views) and one image size, got {sorted(local_shapes)} '
                f'beside views of {tuple(views[0].shape)}. Fix: give '
                'TwoViewCrop one `local_size`.')
        return views

    def loss(self, inputs: List[Tensor],
             data_samples: Optional[List[DataSample]] = None,
             **kwargs) -> Dict[str, Tensor]:
        """Global + dense contrastive losses (+ classification with a head).

        Besides the losses, the dict holds two collapse signals of the
        query batch, which mmengine logs but does not add to the loss:
        ``dims_cls``, the effective number of dimensions of the CLS
        features (below the batch size), and ``dims_dense``, that of the
        projected dense features over all locations (at most their
        dimension); see :func:`~densevit.models.utils.effective_dims`. A steady fall while
        the loss looks fine means the features are collapsing.

        With ``symmetric_loss`` each view is the query once: the batch of
        pairs (view 1 → view 2) and (view 2 → view 1) goes through both
        losses together, so both views' keys are enqueued.

        Local crops (``TwoViewCrop(num_local_crops=N)``, the views after the
        first two) are N more query views of each image against the key of
        view 2 (and of view 1 too with ``symmetric_loss``), through the
        online encoder only: each loss is the mean over all query views,
        every view counting once (the dense loss over each view's patches
        inside the key view). The collapse signals and the head see view 1
        only.
        """
        views = self._split_views(inputs, training=True)
        view_q, view_k = views[:2]
        local_crops = views[2:]
        geometry = self._view_geometry(data_samples, view_q.device)
        # Each query view and the key view it is paired with, as indices
        # into the batch's views (and into its recorded geometry).
        pairs = [(0, 1), (1, 0)] if self.symmetric_loss else [(0, 1)]
        if self.symmetric_loss:
            view_q, view_k = (torch.cat([view_q, view_k]),
                              torch.cat([view_k, view_q]))
        q_cls, q_patches, q_global, q_dense = self._encode(view_q)
        # The collapse signal watches the features the model hands out (the
        # neck's), not the predictor's output.
        dims_dense = effective_dims(
            q_dense.flatten(2).transpose(1, 2).flatten(0, 1))
        if self.predictor is not None:
            q_global, q_dense = self.predictor((q_global, q_dense))
        with torch.no_grad():
            k_cls, k_patches = self.key_backbone(view_k)
            k_global, k_dense = self.key_neck((k_cls, k_patches))

        loss_dense = self.dense_loss(q_dense, k_dense, q_patches, k_patches,
                                     self._pair_geometry(geometry, pairs))
        if local_crops:
            _, l_patches, l_global, l_dense = self._encode(
                torch.cat(local_crops))
            if self.predictor is not None:
                l_global, l_dense = self.predictor((l_global, l_dense))
            if self.symmetric_loss:
                # Local crop r of image b pairs with key b (view 2) and key
                # B + b (view 1): rows r·2B + b and r·2B + B + b.
                l_global, l_dense, l_patches = (
                    x.unflatten(0, (len(local_crops), 1, -1)).expand(
                        -1, 2, *([-1] * x.dim())).flatten(0, 2)
                    for x in (l_global, l_dense, l_patches))
            local_pairs = [(2 + r, key) for r in range(len(local_crops))
                           for _, key in pairs]
            loss_local = self.dense_loss(
                l_dense, k_dense, l_patches, k_patches,
                self._pair_geometry(geometry, local_pairs))
            # Every query view counts once: view 1 and the N local crops.
            loss_dense = (loss_dense + len(local_crops) * loss_local) / (
                1 + len(local_crops))
            q_global = torch.cat([q_global, l_global])
        loss_global = self.global_loss(q_global, k_global)
        loss_lambda = self.current_loss_lambda
        losses = dict(
            loss_global=loss_global * (1.0 - loss_lambda),
            loss_dense=loss_dense * loss_lambda)
        if self.with_head:
            if not data_samples or any('gt_label' not in sample
                                       for sample in data_samples):
                raise ValueError(
                    'DenseViT has a classification head (joint mode) but the '
                    'batch has images without `gt_label`. Fix: use a '
                    'labelled dataset, or remove `head` for self-supervised '
                    'pretraining.')
            cls_feats = q_cls[:len(data_samples)]
            cls_loss = self.head.loss((cls_feats, ), data_samples)['loss']
            losses['loss_cls'] = cls_loss * self.cls_loss_weight
        # Collapse signals, logged beside the losses (not summed into them:
        # mmengine sums only keys containing 'loss').
        losses['dims_cls'] = effective_dims(q_cls)
        losses['dims_dense'] = dims_dense
        return losses

    def parse_losses(self, losses: Dict[str, Tensor]):
        """mmengine's ``parse_losses``, after checking the hooks that drive
        the queues and the key encoder are in the run.

        Every mmengine ``train_step`` (``BaseModel``'s and the DDP/FSDP
        wrappers') parses the losses of each Runner-driven step, while
        direct ``loss`` calls (tests, benchmarks) do not: so a run without
        ``QueueUpdateHook`` (a queue that never fills) or
        ``MomentumUpdateHook`` (a key encoder that never moves) stops at its
        first step, before the optimizer steps. A Python set lookup: no
        tensor is read.

        Raises:
            ValueError: a hook of :attr:`REQUIRED_HOOKS` (and
                ``LossWeightWarmupHook`` while a warm-up is set)
                did not mark the model in its ``before_train``.
        """
        warming_up = self.dense_warmup_iters or self.geometric_warmup_iters
        required = self.REQUIRED_HOOKS + (
            ('LossWeightWarmupHook', ) if warming_up else ())
        missing = [name for name in required
                   if name not in self.driving_hooks]
        if missing:
            fix = ', '.join(f"dict(type='{name}')" for name in missing)
            raise ValueError(
                f'DenseViT is trained without {" and ".join(missing)}: the '
                'memory queues / key encoder / dense warm-up would never be '
                f'updated. Fix: add {fix} to custom_hooks (the model base '
                'configs in configs/_base_/models/ list them; a config that '
                'sets custom_hooks replaces that list, so start it from '
                '`*_base_.custom_hooks`).')
        return super().parse_losses(losses)

    def _view_geometry(self, data_samples: Optional[List[DataSample]],
                       device: torch.device
                       ) -> Optional[Tuple[Tensor, Tensor]]:
        """``(view_boxes (B, V, 4), view_flips (B, V))`` of the batch's V
        views when the dense loss uses the crop geometry and the batch
        records it, else None.

        A batch without the geometry (views not made by ``TwoViewCrop``)
        trains with DenseCL's whole-grid matching; the first such batch logs
        a warning with the fix.
        """
        if not getattr(self.dense_loss, 'needs_geometry', False):
            return None
        if not data_samples or any('view_boxes' not in sample
                                   or 'view_flips' not in sample
                                   for sample in data_samples):
            if not self._warned_no_geometry:
                print_log(
                    'dense_loss.match_window needs the crop geometry of both '
                    'views, but the batch has no view_boxes/view_flips: '
                    'matching over the whole grid instead (DenseCL). Fix: '
                    'build the views with TwoViewCrop + PackDenseInputs, or '
                    'set dense_loss.match_window=None.',
                    logger='current',
                    level=logging.WARNING)
                self._warned_no_geometry = True
            return None
        boxes = torch.stack([s.view_boxes for s in data_samples])
        flips = torch.stack([s.view_flips for s in data_samples])
        return (boxes.to(device, non_blocking=True),
                flips.to(device, non_blocking=True))

    @staticmethod
    def _pair_geometry(geometry: Optional[Tuple[Tensor, Tensor]],
                       pairs: List[Tuple[int, int]]
                       ) -> Optional[Tuple[Tensor, Tensor]]:
        """The geometry of each (query view, key view) pair of ``pairs``,
        stacked pair by pair: ``(boxes (len(pairs)·B, 2, 4), flips
        (len(pairs)·B, 2))``, or None without geometry."""
        if geometry is None:
            return None
        boxes, flips = geometry
        return (torch.cat([boxes[:, list(pair)] for pair in pairs]),
                torch.cat([flips[:, list(pair)] for pair in pairs]))

    @torch.no_grad()
    def predict(self,
                inputs: Union[Tensor, List[Tensor]],
                data_samples: Optional[List[DataSample]] = None,
                **kwargs) -> List[DataSample]:
        """Class scores (with a head) and dense features per image.

        Each returned sample carries ``cls_feats`` (C,), ``patch_feats``
        (C, H, W), ``dense_feats`` (H, W, D) and, with a head,
        ``pred_score``/``pred_label``. Given two views it also carries the
        correspondences mined between them: ``pred_corr_backbone`` and
        ``pred_corr_dense`` (S,) and metainfo ``patch_grid``.
        """
        views = self._split_views(inputs)
        cls, patches, _, dense = self._encode(views[0])
        batch = cls.shape[0]
        if data_samples is None:
            data_samples = [DataSample() for _ in range(batch)]
        if self.with_head:
            data_samples = self.head.predict((cls, ), data_samples)
        dense_hwd = dense.permute(0, 2, 3, 1)
        for i, sample in enumerate(data_samples):
            sample.set_field(cls[i], 'cls_feats', field_type='data')
            sample.set_field(patches[i], 'patch_feats', field_type='data')
            sample.set_field(dense_hwd[i], 'dense_feats', field_type='data')
        if len(views) == 2:
            _, patches2, _, dense2 = self._encode(views[1])
            match_backbone = self.dense_loss.extract_correspondence(
                patches, patches2)
            match_dense = self.dense_loss.extract_correspondence(
                dense, dense2)
            grid = tuple(patches.shape[-2:])
            for i, sample in enumerate(data_samples):
                sample.set_field(match_backbone[i], 'pred_corr_backbone',
                                 field_type='data')
                sample.set_field(match_dense[i], 'pred_corr_dense',
                                 field_type='data')
                sample.set_field(grid, 'patch_grid', field_type='metainfo')
        return data_samples
