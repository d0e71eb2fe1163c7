"""BN-Inception: the Inception network of the paper's appendix (Figure 5), with or without BN.

The ten inception modules are the rows of `FIGURE_5`, copied from the paper's table;
one builder, `InceptionModule`, turns a row into layers. Every "convolution" of the
table is a `ConvLayer` (bn_repro/models/conv_layer.py): z = g(BN(W ∗ u)) with BN (the
bias is dropped, β takes its role) or z = g(W ∗ u + b) without. g is ReLU, or the
sigmoid for BN-x5-Sigmoid.

Network (``stem="imagenet"``, 224×224 input; "Res" is the output resolution):

  ====================================  =====  ==================================
  layer                                 Res    notes
  ====================================  =====  ==================================
  input                                 224    images in [0, 1], 1 or 3 channels
  convolution 7×7/2, 64                 112    separable, depth multiplier 8
  max pool 3×3/2                        56
  [LRN]                                        only with ``use_lrn`` [1]
  convolution 1×1, 64 + 3×3/1, 192      56     "#3×3 reduce 64, #3×3 192"
  [LRN]
  max pool 3×3/2                        28
  inception 3a, 3b, 3c (stride 2)       28→14  `FIGURE_5`
  inception 4a..4e (4e stride 2)        14→7
  inception 5a, 5b                      7
  global average pool, [dropout], FC    1      ``dropout_rate``, ``num_classes``
  ====================================  =====  ==================================

Choices where the printed table is ambiguous or inconsistent:

* **Pool projection of 4c and 4d** (``pool_proj_4cd``). The table prints "avg + 128"
  for both, but then 4c and 4d would output 160+160+160+128 = 96+192+192+128 = 608
  channels and 4e 1056, while the table prints 576 and 1024. Those printed depths add
  up only with a projection of 96, which is what the authors' TF-slim inception_v2
  uses. Default 96 (the printed depths and the authors' code); 128 reproduces the
  printed projection and the pretrainedmodels PyTorch port (608/1056 channels).
* **Separable first convolution** (``first_conv``). The appendix: "separable
  convolution with depth multiplier 8 on the first convolutional layer": a 7×7
  depthwise convolution giving 8 maps per input channel, then a 1×1 convolution to
  64, with no nonlinearity in between (TF-slim's separable_conv2d), so BN and g come
  once, after the 1×1. "plain" is an ordinary 7×7 convolution (pretrainedmodels).
  As in TF-slim, the depth multiplier is min(depth(64) // 3, 8).
* **Stride-2 modules 3c and 4e** (the table prints their input size). The stride is
  on the last 3×3 of each 3×3 branch and on the 3×3/2 max pool, whose output is
  passed through unprojected; TF-slim does the same.
* **Padding.** SAME everywhere (TF-slim), so 224 → 112 → 56 → 28 → 14 → 7. The 3×3/1
  average pools inside modules average only the in-image values at the border
  (TensorFlow's SAME average pooling), max pools pad with −∞
  (bn_repro/models/geometry.py, which also has Caffe's rules).
* **Head.** The 7×7 average pool of the table is a global average pool, so the net
  accepts other input sizes; then dropout (0.4 for the Inception baseline) and one
  fully-connected layer to the logits, which has no BN (it feeds the softmax, not a
  nonlinearity).

Counts (scripts/model_summary.py; tests/test_inception.py checks them against an
independent count of the table). With the printed widths (proj 128), a plain 7×7
convolution, γ and β, 1000 classes: 11.29M parameters, 2.03 G multiply-accumulates
per 224×224 image; the separable first convolution takes it to 11.28M and 1.95 G.
There are 69 BN layers (3 in the stem, 7 per module, 5 in 3c and 4e). The paper's
"13.6·10⁶ parameters" is not reached by any reading of the table we know of.

Options: the config keys of bn_repro/models/inception_config.py.

On CPU, every convolution is computed as a 2-D matrix product (im2col): the same
sums, in the form XLA's CPU backend runs fast, also inside the trainer's step loop
(bn_repro/models/conv.py; `LayerOptions.cpu_matmuls` of bn_repro/models/conv_layer.py
is the one switch).

[1] GoogLeNet's local response normalization: bn_repro/models/lrn.py.
"""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from bn_repro.models import geometry
from bn_repro.models.conv_layer import ConvLayer, LayerOptions
from bn_repro.models.lrn import LocalResponseNorm

PASS_THROUGH = None  # pool branch concatenated without a projection (3c, 4e)


@dataclasses.dataclass(frozen=True)
class Row:
    """One inception module: a row of Figure 5 (0 in ``n1x1``: no 1×1 branch)."""

    name: str
    n1x1: int
    n3x3_reduce: int
    n3x3: int
    double_3x3_reduce: int
    double_3x3: int
    pool: str  # "avg" or "max", 3×3
    pool_proj: int | None  # 1×1 projection after the pool, or PASS_THROUGH
    stride: int


# The paper's appendix, Figure 5 (the projections of 4c and 4d: see `pool_proj_4cd`).
# fmt: off
FIGURE_5 = tuple(Row(*row) for row in (
    # name  #1×1  #3×3 reduce  #3×3  double #3×3 reduce  double #3×3  pool   proj          stride
    ("3a",    64,          64,   64,                 64,          96, "avg",   32,           1),
    ("3b",    64,          64,   96,                 64,          96, "avg",   64,           1),
    ("3c",     0,         128,  160,                 64,          96, "max",   PASS_THROUGH, 2),
    ("4a",   224,          64,   96,                 96,         128, "avg",  128,           1),
    ("4b",   192,          96,  128,                 96,         128, "avg",  128,           1),
    ("4c",   160,         128,  160,                128,         160, "avg",  128,           1),
    ("4d",    96,         128,  192,                160,         192, "avg",  128,           1),
    ("4e",     0,         128,  192,                192,         256, "max",   PASS_THROUGH, 2),
    ("5a",   352,         192,  320,                160,         224, "avg",  128,           1),
    ("5b",   352,         192,  320,                192,         224, "max",  128,           1),
))
# fmt: on
MODULES_WITH_POOL_PROJ_4CD = ("4c", "4d")
DEPTH_FIELDS = ("n1x1", "n3x3_reduce", "n3x3", "double_3x3_reduce", "double_3x3", "pool_proj")

NORMS = ("batch", "none")
STEMS = ("imagenet", "small")
FIRST_CONVS = ("separable", "plain")
POOL_PROJ_4CD_CHOICES = (96, 128)
SEPARABLE_DEPTH_MULTIPLIER = 8


class InceptionModule(nn.Module):
    """Builds one row of Figure 5: four branches concatenated along channels.

    1×1 | 1×1 reduce → 3×3 | 1×1 reduce → 3×3 → 3×3 | 3×3 pool → [1×1 projection].
    A stride-2 row puts its stride on the last convolution of the 3×3 branches and
    on the pool. ``per_activation_bn`` applies to the four branch outputs.
    """

    row: Row
    options: LayerOptions
    per_activation_bn: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        row, s = self.row, self.row.stride
        layer = functools.partial(ConvLayer, options=self.options)
        out = functools.partial(layer, per_activation_bn=self.per_activation_bn)
        branches = []
        if row.n1x1:
            branches.append(out(row.n1x1, 1, name="conv_1x1")(x, train))
        b = layer(row.n3x3_reduce, 1, name="conv_3x3_reduce")(x, train)
        branches.append(out(row.n3x3, 3, stride=s, name="conv_3x3")(b, train))
        b = layer(row.double_3x3_reduce, 1, name="conv_double_3x3_reduce")(x, train)
        b = layer(row.double_3x3, 3, name="conv_double_3x3_a")(b, train)
        branches.append(out(row.double_3x3, 3, stride=s, name="conv_double_3x3_b")(b, train))
        pool = geometry.max_pool if row.pool == "max" else geometry.avg_pool
        b = pool(x, 3, s, self.options.padding)
        if row.pool_proj is not PASS_THROUGH:
            b = out(row.pool_proj, 1, name="pool_proj")(b, train)
        branches.append(b)
        return jnp.concatenate(branches, axis=-1)


class BNInception(nn.Module):
    """Figure 5's network: stem, inception 3a-5b, global average pool, classifier."""

    num_classes: int = 1000
    options: LayerOptions = LayerOptions()
    stem: str = "imagenet"
    separable_first_conv: bool = True
    use_lrn: bool = False
    lrn_pixel_scale: float = 1.0  # bn_repro/models/lrn.py
    dropout_rate: float = 0.0
    width_multiplier: float = 1.0
    min_depth: int = 16
    pool_proj_4cd: int = 96
    per_activation_bn_last: bool = False
    first_conv_bn: bool = True

    def depth(self, d: int) -> int:
        """TF-slim's depth(): every depth scaled, but not below ``min_depth``."""
        return max(int(d * self.width_multiplier), self.min_depth)

    def rows(self) -> tuple[Row, ...]:
        """`FIGURE_5` with the chosen 4c/4d projection and every depth scaled."""
        rows = []
        for row in FIGURE_5:
            if row.name in MODULES_WITH_POOL_PROJ_4CD:
                row = dataclasses.replace(row, pool_proj=self.pool_proj_4cd)
            depths = {
                field: self.depth(value)
                for field, value in dataclasses.asdict(row).items()
                if field in DEPTH_FIELDS and value
            }
            rows.append(dataclasses.replace(row, **depths))
        return tuple(rows)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        layer = functools.partial(ConvLayer, options=self.options)
        depth_multiplier = (
            min(self.depth(64) // 3, SEPARABLE_DEPTH_MULTIPLIER) if self.separable_first_conv else 0
        )
        # The small stem keeps full resolution up to the second max pool.
        kernel, stride = (7, 2) if self.stem == "imagenet" else (3, 1)
        x = layer(
            self.depth(64),
            kernel,
            stride=stride,
            depth_multiplier=depth_multiplier,
            batch_norm=self.first_conv_bn,
            name="conv1",
        )(x, train)
        padding = self.options.padding
        if self.stem == "imagenet":
            x = geometry.max_pool(x, 3, 2, padding)
        if self.use_lrn:
            x = LocalResponseNorm(self.lrn_pixel_scale, name="lrn1")(x)
        x = layer(self.depth(64), 1, name="conv2_3x3_reduce")(x, train)
        x = layer(self.depth(192), 3, name="conv2_3x3")(x, train)
        if self.use_lrn:
            x = LocalResponseNorm(self.lrn_pixel_scale, name="lrn2")(x)
        x = geometry.max_pool(x, 3, 2, padding)

        rows = self.rows()
        for row in rows:
            x = InceptionModule(
                row,
                self.options,
                per_activation_bn=self.per_activation_bn_last and row is rows[-1],
                name=f"inception_{row.name}",
            )(x, train)

        x = jnp.mean(x, axis=(1, 2))
        if self.dropout_rate:
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        logits = nn.Dense(self.num_classes, dtype=self.options.dtype, name="logits")(x)
        return logits.astype(jnp.float32)  # the softmax and the loss stay float32
