"""Which TorchScript ops a model package may contain (docs/models.md, "What a package may
contain"). Pure and torch-free: op names in, verdict out.

A package is code the server runs, so the policy is an allowlist, not a denylist: an op is
accepted only when it is named below. The list holds pure tensor computation (arithmetic,
comparisons, reductions, shapes, indexing, the nn building blocks) and TorchScript's own
control flow and container ops. Everything else is refused, in particular:

- ops that read or write files or storages (`aten::from_file`, `aten::save`, `aten::set_`,
  storage offsets), talk to other processes (`prim::rpc_*`, forks, awaits) or print;
- ops that hand out uninitialised memory (`empty*`, `resize_`, `new_empty*`): their bytes are
  whatever the server's heap held before, a secret included;
- any custom `torch.ops` namespace (anything that is not `aten::` or `prim::`), since its
  kernels are native code the policy cannot see into;
- calls the scan could not inline (`prim::CallFunction`, `prim::CallMethod` on interfaces).

Bump POLICY_VERSION whenever the lists change: a registered package whose scan predates the
current policy is scanned again before it is loaded."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

POLICY_VERSION = 1

_ATEN = """
abs abs_ absolute acos acosh adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d
adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d add add_ addbmm addcdiv addcmul
addmm addmv addr affine_grid_generator alias all allclose alpha_dropout amax amin aminmax
angle any append arange arccos arccosh arcsin arcsinh arctan arctan2 arctanh argmax argmin
argsort argwhere as_tensor asin asinh atan atan2 atanh atleast_1d atleast_2d atleast_3d
avg_pool1d avg_pool2d avg_pool3d baddbmm batch_norm bernoulli bilinear binary_cross_entropy
binary_cross_entropy_with_logits bincount bitwise_and bitwise_not bitwise_or bitwise_xor bmm
broadcast_tensors broadcast_to bucketize cartesian_prod cat cdist ceil ceil_ celu chunk clamp
clamp_ clamp_max clamp_min clip clone column_stack concat concatenate conj constant_pad_nd
contiguous conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d
convolution copy copy_ cos cosh cosine_embedding_loss cosine_similarity count_nonzero
cross cross_entropy_loss cummax cummin cumprod cumsum deg2rad detach diag diag_embed diagonal
diff digamma dim dist div div_ divide dot dropout dropout_ dsplit dstack einsum elu elu_
embedding embedding_bag eq eq_ equal erf erfc erfinv exp exp2 exp_ expand expand_as expm1 eye
feature_alpha_dropout feature_dropout fill fill_ fix flatten flip fliplr flipud float_power
floor floor_ floor_divide fmax fmin fmod frac full full_like gather gcd ge gelu gelu_ glu
greater greater_equal group_norm gru_cell gt hardshrink hardsigmoid hardsigmoid_ hardswish
hardswish_ hardtanh hardtanh_ heaviside hinge_embedding_loss histc hsplit hstack hypot
index index_add index_copy index_fill index_put index_put_ index_select inner instance_norm
is_complex is_floating_point is_nonzero is_same_size isclose isfinite isin isinf isnan
isneginf isposinf isreal kl_div kron kthvalue l1_loss layer_norm lcm ldexp le leaky_relu
leaky_relu_ lerp less less_equal lgamma linear linspace log log10 log1p log2 log_ log_sigmoid
log_softmax logaddexp logaddexp2 logcumsumexp logdet logical_and logical_not logical_or
logical_xor logit logspace logsumexp lstm_cell lt margin_ranking_loss masked_fill
masked_fill_ masked_scatter masked_select matmul max max_pool1d max_pool1d_with_indices
max_pool2d max_pool2d_with_indices max_pool3d max_pool3d_with_indices maximum mean median
meshgrid min minimum mish mish_ mm mode moveaxis movedim mse_loss mul mul_ multinomial
multiply mv mvlgamma nan_to_num nanmean nanmedian nanquantile nansum narrow narrow_copy
native_layer_norm ne ne_ neg neg_ negative nll_loss nll_loss2d nonzero norm normal
not_equal numel ones ones_like outer pad pairwise_distance pdist permute pinverse
pixel_shuffle pixel_unshuffle poisson_nll_loss polar pow pow_ prelu prod quantile rad2deg
rand rand_like randint randint_like randn randn_like randperm ravel reciprocal reciprocal_
reflection_pad1d reflection_pad2d reflection_pad3d relu relu6 relu_ remainder renorm repeat
repeat_interleave replication_pad1d replication_pad2d replication_pad3d reshape reshape_as
rms_norm rnn_relu_cell rnn_tanh_cell roll rot90 round round_ rrelu rsqrt rsub scalar_tensor
scaled_dot_product_attention scatter scatter_ scatter_add scatter_add_ scatter_reduce
searchsorted select select_scatter selu selu_ sgn sigmoid sigmoid_ sign signbit silu silu_
sin sinc sinh size slice slice_scatter smooth_l1_loss soft_margin_loss softmax
softplus softshrink sort split split_with_sizes sqrt sqrt_ square squeeze squeeze_ stack std
std_mean sub sub_ subtract sum swapaxes swapdims t take take_along_dim tan tanh tanh_
tensor tensor_split tensordot threshold threshold_ tile topk trace transpose tril tril_
triplet_margin_loss triu triu_ true_divide trunc type_as unbind unflatten unfold
uniform_ unique_consecutive unique_dim unsafe_chunk unsafe_split unsqueeze unsqueeze_
upsample_bicubic2d upsample_bilinear2d upsample_linear1d upsample_nearest1d
upsample_nearest2d upsample_nearest3d var var_mean view view_as vsplit vstack where xlogy
zero_ zeros zeros_like
__and__ __contains__ __derive_index __getitem__ __iand__ __interpolate __ior__ __is__
__isnot__ __lshift__ __not__ __or__ __range_length __round_to_zero_floordiv __rshift__
__upsample __upsample_bilinear __xor__ _set_item Bool Complex ComplexImplicit Float
FloatImplicit Int IntImplicit ScalarImplicit add_ bin ceil clear copysign count
dict divmod extend factorial floor floordiv format gcd get index insert int_repr is_contiguous
item items keys len list lower max min modf numel percentFormat
pop radians remove reverse setdefault sorted split str strip update values
__getitem__ _infer_size _pad_packed_sequence _pack_padded_sequence _shape_as_tensor
_size_if_not_equal _unwrap_optional contiguous device get_device
is_leaf ne requires_grad_ to type_as _dim_arange _reshape_from_tensor
detach_ fill_diagonal_ masked_scatter_ index_fill_ index_add_ index_copy_ put_ clamp_min_
clamp_max_ addmm_ baddbmm_ lerp_ t_ transpose_ fmod_ remainder_ abs_ sign_ trunc_ frac_
floor_divide_ true_divide_ logical_and_ logical_or_ logical_not_ bitwise_and_ bitwise_or_
lt_ le_ gt_ ge_ exponential_ normal_ bernoulli_ cauchy_ geometric_ log_normal_
_softmax _log_softmax _convolution _native_batch_norm_legit_no_training
native_batch_norm _batch_norm_impl_index cudnn_is_acceptable is_grad_enabled
"""

# Deliberately absent from the lists above even though they are tensor ops: anything whose
# output can be uninitialised memory (empty*, new_empty*, resize*), storage plumbing (set_,
# storage_offset, from_file), I/O (save, load, print, warn) and global RNG seeding
# (manual_seed, seed), which would change every other model's random state in the process.

_PRIM = """
Constant If Loop ListConstruct ListUnpack TupleConstruct TupleUnpack TupleIndex
TupleSlice DictConstruct DictIndex GetAttr SetAttr RaiseException Uninitialized
unchecked_cast unchecked_unwrap_optional device dtype layout NumToTensor min max abs
isinstance is_cuda is_cpu is_xpu is_mps is_meta is_sparse is_quantized is_mkldnn
is_nested requires_grad data shape name AutogradZero AutogradAdd Guard BailOut
BailoutTemplate TypeCheck RequiresGradCheck FallbackGraph ConstantChunk ListIndex
EnumName EnumValue StringIndex Enter Exit CreateObject tolist type
TensorExprGroup TensorExprDynamicGroup DifferentiableGraph profile_ivalue
"""

ALLOWED_OPS: frozenset[str] = frozenset(
    {f"aten::{n}" for n in _ATEN.split()} | {f"prim::{n}" for n in _PRIM.split()}
)
# Spelled out so a later edit of the lists cannot let them in by accident.
NEVER_ALLOWED: frozenset[str] = frozenset(
    {
        "aten::from_file",
        "aten::save",
        "aten::set_",
        "aten::empty",
        "aten::empty_like",
        "aten::empty_strided",
        "aten::new_empty",
        "aten::new_empty_strided",
        "aten::resize_",
        "aten::storage_offset",
        "aten::manual_seed",
        "aten::seed",
        "aten::warn",
        "prim::Print",
        "prim::CallFunction",
        "prim::CallMethod",
        "prim::PythonOp",
        "prim::rpc_async",
        "prim::rpc_sync",
        "prim::rpc_remote",
        "prim::fork",
        "aten::wait",
    }
)


@dataclass(frozen=True)
class OpVerdict:
    ok: bool
    # op → the places ("method path") it was found, for the error's details
    disallowed: dict[str, list[str]] = field(default_factory=dict)

    def details(self) -> dict[str, object]:
        return {
            "ops": [
                {"op": op, "where": where[:10], "count": len(where)}
                for op, where in sorted(self.disallowed.items())
            ],
            "policy_version": POLICY_VERSION,
        }

    def message(self) -> str:
        names = ", ".join(sorted(self.disallowed))
        return (
            f"the package uses ops outside the allowlist of pure tensor ops: {names} "
            "(see docs/models.md, 'What a package may contain')"
        )


def op_allowed(op: str) -> bool:
    if op in NEVER_ALLOWED:
        return False
    return op in ALLOWED_OPS


def op_verdict(ops: Iterable[tuple[str, str]]) -> OpVerdict:
    """`ops` are (op kind, where) pairs, e.g. ("aten::add", "encoder.forward")."""
    bad: dict[str, list[str]] = {}
    for op, where in ops:
        if not op_allowed(op):
            places = bad.setdefault(op, [])
            if where not in places:
                places.append(where)
    return OpVerdict(ok=not bad, disallowed=bad)
