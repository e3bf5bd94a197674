#!/usr/bin/env python3
"""DWPose fixtures for ipa_pose's ONNX runtime and DWPose pipeline (tests/pose/test_dwpose*.cpp).

The real weights (yolox_l.onnx, dw-ll_ucoco_384.onnx) are not needed: this script builds
SYNTHETIC ONNX models with the structure and operator types of the released exports and
random (non-zero) weights, exports them with torch.onnx (TorchScript exporter, opset 11 as
both released files), and records onnxruntime's outputs and DWPose's own Python pre/post-
processing results on fixed inputs.

  * YOLOX (Megvii-BaseDetection/YOLOX, yolox/models/{network_blocks,darknet,yolo_pafpn,
    yolo_head}.py, exported as tools/export_onnx.py does: decode_in_inference=False, nn.SiLU
    replaced by x * sigmoid(x), BN folded into Conv by the exporter): Focus (four strided
    slices + Concat), BaseConv (Conv+BN+SiLU), CSPDarknet with CSPLayer/Bottleneck and the
    SPPBottleneck (MaxPool 5/9/13), PAFPN with nearest Upsample (Resize) and Concat, the
    decoupled head (stem, cls/reg conv towers, cls/reg/obj preds, sigmoid on obj and cls,
    Concat, Reshape/flatten, Concat over levels, Transpose) -> [1, anchors, 85].
  * RTMPose (mmpose CSPNeXt + RTMCCHead, exported by mmdeploy): ConvModule (Conv+BN+SiLU),
    CSPNeXtBlock (3x3 ConvModule + depthwise-separable 5x5), CSPLayer with ChannelAttention
    (GlobalAveragePool, 1x1 Conv, HardSigmoid, Mul), SPPBottleneck in the last stage, the
    RTMCC head: 7x7 Conv -> Flatten -> ScaleNorm -> Linear -> RTMCCBlock (GAU: ScaleNorm,
    Linear, SiLU, Split, gamma/beta, unbind, MatMul, ReLU, square, Mul, Linear, Scale residual)
    -> two Linear heads simcc_x, simcc_y. ScaleNorm appears both as torch.norm (ReduceL2) and
    as Pow/ReduceSum/Sqrt so that both spellings of the L2 norm are exercised.

Widths are small; the input sizes are the real ones (640x640 and 384x288, so the grid decode
and the SimCC sizes are DWPose's) for the pipeline models, and small for the graph-parity
models (whose outputs are stored whole). `--full-width DIR` writes the same graphs with the
real layer sizes (YOLOX-L: width 1.0 depth 1.0; RTMPose-l: CSPNeXt widen 1.0 deepen 1.0, GAU
256/128) for timing only; they are not committed.

DWPose's own functions are imported from the fetched source (IDEA-Research/DWPose,
ControlNet-v1-1-nightly/annotator/dwpose) given with --dwpose.

Reference environment (pinned in scripts/requirements-ref.txt): Python 3.11, torch 2.11.0,
numpy 2.4.6, onnx 1.23.2, onnxruntime 1.31.1, opencv-python-headless 4.14.0.94.

    /root/.cache/ipa/venv-torch-2.11/bin/python scripts/gen_dwpose_fixtures.py \
        --dwpose /path/to/DWPose/ControlNet-v1-1-nightly/annotator/dwpose --out tests/fixtures/dwpose
"""

import argparse
import io
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# YOLOX


class SiLUExport(nn.Module):
    # yolox/models/network_blocks.py SiLU: the export-friendly x * sigmoid(x)
    def forward(self, x):
        return x * torch.sigmoid(x)


class BaseConv(nn.Module):
    def __init__(self, cin, cout, k, s, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = SiLUExport()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Focus(nn.Module):
    def __init__(self, cin, cout, k=1, s=1):
        super().__init__()
        self.conv = BaseConv(cin * 4, cout, k, s)

    def forward(self, x):
        tl = x[..., ::2, ::2]
        tr = x[..., ::2, 1::2]
        bl = x[..., 1::2, ::2]
        br = x[..., 1::2, 1::2]
        return self.conv(torch.cat((tl, bl, tr, br), dim=1))


class Bottleneck(nn.Module):
    def __init__(self, cin, cout, shortcut=True, expansion=0.5):
        super().__init__()
        hidden = int(cout * expansion)
        self.conv1 = BaseConv(cin, hidden, 1, 1)
        self.conv2 = BaseConv(hidden, cout, 3, 1)
        self.use_add = shortcut and cin == cout

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class SPPBottleneck(nn.Module):
    def __init__(self, cin, cout, ks=(5, 9, 13)):
        super().__init__()
        hidden = cin // 2
        self.conv1 = BaseConv(cin, hidden, 1, 1)
        self.m = nn.ModuleList([nn.MaxPool2d(k, 1, k // 2) for k in ks])
        self.conv2 = BaseConv(hidden * (len(ks) + 1), cout, 1, 1)

    def forward(self, x):
        x = self.conv1(x)
        x = torch.cat([x] + [m(x) for m in self.m], dim=1)
        return self.conv2(x)


class CSPLayer(nn.Module):
    def __init__(self, cin, cout, n=1, shortcut=True, expansion=0.5):
        super().__init__()
        hidden = int(cout * expansion)
        self.conv1 = BaseConv(cin, hidden, 1, 1)
        self.conv2 = BaseConv(cin, hidden, 1, 1)
        self.conv3 = BaseConv(2 * hidden, cout, 1, 1)
        self.m = nn.Sequential(*[Bottleneck(hidden, hidden, shortcut, 1.0) for _ in range(n)])

    def forward(self, x):
        x1 = self.m(self.conv1(x))
        x2 = self.conv2(x)
        return self.conv3(torch.cat((x1, x2), dim=1))


class CSPDarknet(nn.Module):
    def __init__(self, dep, wid):
        super().__init__()
        bc = int(wid * 64)
        bd = max(round(dep * 3), 1)
        self.stem = Focus(3, bc, 3)
        self.dark2 = nn.Sequential(BaseConv(bc, bc * 2, 3, 2), CSPLayer(bc * 2, bc * 2, bd))
        self.dark3 = nn.Sequential(BaseConv(bc * 2, bc * 4, 3, 2), CSPLayer(bc * 4, bc * 4, bd * 3))
        self.dark4 = nn.Sequential(BaseConv(bc * 4, bc * 8, 3, 2), CSPLayer(bc * 8, bc * 8, bd * 3))
        self.dark5 = nn.Sequential(BaseConv(bc * 8, bc * 16, 3, 2), SPPBottleneck(bc * 16, bc * 16),
                                   CSPLayer(bc * 16, bc * 16, bd, shortcut=False))

    def forward(self, x):
        x = self.dark2(self.stem(x))
        d3 = self.dark3(x)
        d4 = self.dark4(d3)
        d5 = self.dark5(d4)
        return d3, d4, d5


class YOLOPAFPN(nn.Module):
    def __init__(self, dep, wid):
        super().__init__()
        c = [int(256 * wid), int(512 * wid), int(1024 * wid)]
        n = round(3 * dep)
        self.backbone = CSPDarknet(dep, wid)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = BaseConv(c[2], c[1], 1, 1)
        self.C3_p4 = CSPLayer(2 * c[1], c[1], n, False)
        self.reduce_conv1 = BaseConv(c[1], c[0], 1, 1)
        self.C3_p3 = CSPLayer(2 * c[0], c[0], n, False)
        self.bu_conv2 = BaseConv(c[0], c[0], 3, 2)
        self.C3_n3 = CSPLayer(2 * c[0], c[1], n, False)
        self.bu_conv1 = BaseConv(c[1], c[1], 3, 2)
        self.C3_n4 = CSPLayer(2 * c[1], c[2], n, False)

    def forward(self, x):
        x2, x1, x0 = self.backbone(x)
        fpn_out0 = self.lateral_conv0(x0)
        f_out0 = self.C3_p4(torch.cat([self.upsample(fpn_out0), x1], 1))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(torch.cat([self.upsample(fpn_out1), x2], 1))
        pan_out1 = self.C3_n3(torch.cat([self.bu_conv2(pan_out2), fpn_out1], 1))
        pan_out0 = self.C3_n4(torch.cat([self.bu_conv1(pan_out1), fpn_out0], 1))
        return pan_out2, pan_out1, pan_out0


class YOLOXHead(nn.Module):
    def __init__(self, wid, num_classes=80):
        super().__init__()
        hc = int(256 * wid)
        cins = [int(256 * wid), int(512 * wid), int(1024 * wid)]
        self.stems = nn.ModuleList([BaseConv(c, hc, 1, 1) for c in cins])
        self.cls_convs = nn.ModuleList([nn.Sequential(BaseConv(hc, hc, 3, 1), BaseConv(hc, hc, 3, 1)) for _ in cins])
        self.reg_convs = nn.ModuleList([nn.Sequential(BaseConv(hc, hc, 3, 1), BaseConv(hc, hc, 3, 1)) for _ in cins])
        self.cls_preds = nn.ModuleList([nn.Conv2d(hc, num_classes, 1) for _ in cins])
        self.reg_preds = nn.ModuleList([nn.Conv2d(hc, 4, 1) for _ in cins])
        self.obj_preds = nn.ModuleList([nn.Conv2d(hc, 1, 1) for _ in cins])

    def forward(self, xin):
        outputs = []
        for k, x in enumerate(xin):
            x = self.stems[k](x)
            cls_feat = self.cls_convs[k](x)
            reg_feat = self.reg_convs[k](x)
            out = torch.cat([self.reg_preds[k](reg_feat), self.obj_preds[k](reg_feat).sigmoid(),
                             self.cls_preds[k](cls_feat).sigmoid()], 1)
            outputs.append(out)
        # decode_in_inference=False: [B, 85, sum(HW)] -> [B, sum(HW), 85]
        return torch.cat([x.flatten(start_dim=2) for x in outputs], dim=2).permute(0, 2, 1)


class YOLOX(nn.Module):
    def __init__(self, dep, wid):
        super().__init__()
        self.backbone = YOLOPAFPN(dep, wid)
        self.head = YOLOXHead(wid)

    def forward(self, x):
        return self.head(self.backbone(x))


# ---------------------------------------------------------------------------------------------
# RTMPose (CSPNeXt + RTMCCHead)


class ConvModule(nn.Module):
    def __init__(self, cin, cout, k, s=1, groups=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class DWSepConv(nn.Module):
    def __init__(self, cin, cout, k):
        super().__init__()
        self.depthwise_conv = ConvModule(cin, cin, k, groups=cin)
        self.pointwise_conv = ConvModule(cin, cout, 1)

    def forward(self, x):
        return self.pointwise_conv(self.depthwise_conv(x))


class CSPNeXtBlock(nn.Module):
    def __init__(self, cin, cout, add_identity, expansion=1.0, kernel_size=5):
        super().__init__()
        hidden = int(cout * expansion)
        self.conv1 = ConvModule(cin, hidden, 3)
        self.conv2 = DWSepConv(hidden, cout, kernel_size)
        self.add_identity = add_identity and cin == cout

    def forward(self, x):
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class ChannelAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(c, c, 1, 1, 0, bias=True)
        self.act = nn.Hardsigmoid()

    def forward(self, x):
        return x * self.act(self.fc(self.global_avgpool(x)))


class CSPNeXtLayer(nn.Module):
    def __init__(self, cin, cout, n, add_identity, expand_ratio=0.5):
        super().__init__()
        mid = int(cout * expand_ratio)
        self.main_conv = ConvModule(cin, mid, 1)
        self.short_conv = ConvModule(cin, mid, 1)
        self.final_conv = ConvModule(2 * mid, cout, 1)
        self.blocks = nn.Sequential(*[CSPNeXtBlock(mid, mid, add_identity) for _ in range(n)])
        self.attention = ChannelAttention(2 * mid)

    def forward(self, x):
        x_main = self.blocks(self.main_conv(x))
        x_short = self.short_conv(x)
        return self.final_conv(self.attention(torch.cat((x_main, x_short), dim=1)))


class SPPBottleneckNeXt(nn.Module):
    def __init__(self, cin, cout, ks=(5, 9, 13)):
        super().__init__()
        mid = cin // 2
        self.conv1 = ConvModule(cin, mid, 1)
        self.poolings = nn.ModuleList([nn.MaxPool2d(k, 1, k // 2) for k in ks])
        self.conv2 = ConvModule(mid * (len(ks) + 1), cout, 1)

    def forward(self, x):
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [p(x) for p in self.poolings], dim=1))


class CSPNeXt(nn.Module):
    # arch P5: [in, out, blocks, add_identity, use_spp]
    ARCH = [[64, 128, 3, True, False], [128, 256, 6, True, False], [256, 512, 6, True, False],
            [512, 1024, 3, False, True]]

    def __init__(self, widen, deepen, channels=None):
        super().__init__()
        ch = channels or [int(a[1] * widen) for a in self.ARCH]
        c0 = channels[0] // 2 if channels else int(self.ARCH[0][0] * widen)
        self.stem = nn.Sequential(ConvModule(3, c0 // 2, 3, 2), ConvModule(c0 // 2, c0 // 2, 3),
                                  ConvModule(c0 // 2, c0, 3))
        stages = []
        cin = c0
        for (_, _, n, add_id, spp), cout in zip(self.ARCH, ch):
            n = max(round(n * deepen), 1)
            layers = [ConvModule(cin, cout, 3, 2)]
            if spp:
                layers.append(SPPBottleneckNeXt(cout, cout))
            layers.append(CSPNeXtLayer(cout, cout, n, add_id))
            stages.append(nn.Sequential(*layers))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.out_channels = cin

    def forward(self, x):
        x = self.stem(x)
        for s in self.stages:
            x = s(x)
        return x


class ScaleNorm(nn.Module):
    # mmpose/models/utils/rtmcc_block.py ScaleNorm; `pow_sum` spells the L2 norm as
    # Pow/ReduceSum/Sqrt (as some exports do) instead of torch.norm's ReduceL2.
    def __init__(self, dim, eps=1e-5, pow_sum=False):
        super().__init__()
        self.scale = dim ** -0.5
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1))
        self.pow_sum = pow_sum

    def forward(self, x):
        if self.pow_sum:
            norm = torch.sqrt(torch.sum(torch.pow(x, 2), dim=-1, keepdim=True))
        else:
            norm = torch.norm(x, dim=-1, keepdim=True)
        norm = norm * self.scale
        return x / norm.clamp(min=self.eps) * self.g


class Scale(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * self.scale


class RTMCCBlock(nn.Module):
    def __init__(self, num_token, in_dims, out_dims, expansion_factor=2, s=128, eps=1e-5):
        super().__init__()
        self.s = s
        self.e = int(in_dims * expansion_factor)
        self.o = nn.Linear(self.e, out_dims, bias=False)
        self.uv = nn.Linear(in_dims, 2 * self.e + self.s, bias=False)
        self.gamma = nn.Parameter(torch.rand((2, self.s)))
        self.beta = nn.Parameter(torch.rand((2, self.s)))
        self.ln = ScaleNorm(in_dims, eps=eps)
        self.act_fn = nn.SiLU(True)
        self.res_scale = Scale(in_dims)
        self.sqrt_s = math.sqrt(s)

    def _forward(self, x):
        x = self.ln(x)
        uv = self.act_fn(self.uv(x))
        u, v, base = torch.split(uv, [self.e, self.e, self.s], dim=2)
        base = base.unsqueeze(2) * self.gamma[None, None, :] + self.beta
        q, k = torch.unbind(base, dim=2)
        qk = torch.bmm(q, k.permute(0, 2, 1))
        kernel = torch.square(F.relu(qk / self.sqrt_s))
        x = u * torch.bmm(kernel, v)
        return self.o(x)

    def forward(self, x):
        return self.res_scale(x) + self._forward(x)


class RTMPose(nn.Module):
    def __init__(self, input_size_wh, widen, deepen, channels=None, hidden=256, s=128, num_kpt=133, split=2.0):
        super().__init__()
        self.backbone = CSPNeXt(widen, deepen, channels)
        w, h = input_size_wh
        flatten = (w // 32) * (h // 32)
        self.final_layer = nn.Conv2d(self.backbone.out_channels, num_kpt, 7, 1, 3)
        self.mlp = nn.Sequential(ScaleNorm(flatten, pow_sum=True), nn.Linear(flatten, hidden, bias=False))
        self.gau = RTMCCBlock(num_kpt, hidden, hidden, 2, s)
        self.cls_x = nn.Linear(hidden, int(w * split), bias=False)
        self.cls_y = nn.Linear(hidden, int(h * split), bias=False)

    def forward(self, x):
        f = self.final_layer(self.backbone(x))
        f = torch.flatten(f, 2)
        f = self.gau(self.mlp(f))
        return self.cls_x(f), self.cls_y(f)


def randomize(model, seed, gain=1.0):
    """Random non-zero weights and BN statistics (the exporter folds BN into Conv)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * gain / math.sqrt(fan_in))
            else:
                p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.75 if name.endswith(("weight", ".g", "scale"))
                        else torch.randn(p.shape, generator=g) * 0.1)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
    model.eval()
    return model


def export(model, shape, input_name, output_names, path):
    x = torch.zeros(shape)
    buf = io.BytesIO()
    torch.onnx.export(model, x, buf, opset_version=11, input_names=[input_name], output_names=output_names,
                      do_constant_folding=True, dynamo=False)
    data = buf.getvalue()
    if path:
        with open(path, "wb") as f:
            f.write(data)
    return data


def yolox_model(seed, wid=0.125, dep=0.33, obj_bias=None, gain=1.0):
    m = randomize(YOLOX(dep, wid), seed, gain)
    if obj_bias is not None:
        with torch.no_grad():
            for p in m.head.obj_preds:
                p.bias.fill_(obj_bias)
    return m


def rtmpose_model(seed, input_wh, channels=(8, 8, 16, 16), hidden=32, s=16, widen=1.0, deepen=0.33):
    return randomize(RTMPose(input_wh, widen, deepen, list(channels) if channels else None, hidden, s), seed)


def op_types(data):
    import onnx
    m = onnx.load_from_string(data)
    return sorted({n.op_type for n in m.graph.node}), m.opset_import[0].version


def fold_bn(model):
    """Folds every Conv+BN pair into the Conv (float32, as the exporter would), so the exported
    weights are exactly the torch model's and a float64 copy of the torch model is the
    reference for the very weights in the ONNX file."""
    with torch.no_grad():
        for m in model.modules():
            for conv_name, bn_name in (("conv", "bn"),):
                conv, bn = getattr(m, conv_name, None), getattr(m, bn_name, None)
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                                      groups=conv.groups, bias=True)
                    fused.weight.copy_(conv.weight * s[:, None, None, None])
                    fused.bias.copy_(bn.bias - bn.running_mean * s)
                    setattr(m, conv_name, fused)
                    setattr(m, bn_name, nn.Identity())
    return model.eval()


# Fixture model settings (small widths; YOLOX-L / DWPose-L structure).
DET_WIDTH, DET_DEPTH, DET_GAIN = 1 / 32, 0.33, 1.6  # gain: activations keep their spatial variation
POSE_CHANNELS, POSE_HIDDEN, POSE_S = (8, 8, 8, 8), 16, 8


def det_model(seed=1, obj_bias=2.0, gain=DET_GAIN):
    return fold_bn(yolox_model(seed, DET_WIDTH, DET_DEPTH, obj_bias, gain))


def pose_model(seed, input_wh):
    return fold_bn(rtmpose_model(seed, input_wh, POSE_CHANNELS, POSE_HIDDEN, POSE_S))


def save_st(path, tensors):
    from safetensors.numpy import save_file
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, path)


def ort_session(data):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def rel_err(a, ref):
    return float(np.abs(a.astype(np.float64) - ref).max() / np.abs(ref).max())


def analytic_input(shape, scale, offset):
    """An input both sides compute exactly: ((37 c + 3 y + 5 x) mod 256 - offset) / scale."""
    _, c, h, w = shape
    v = np.fromfunction(lambda c, y, x: (c * 37 + y * 3 + x * 5) % 256, (c, h, w)).astype(np.float64)
    return ((v - offset) / scale).astype(np.float32)[None]


def graph_parity(models, out, meta):
    """Both fixture graphs on analytic inputs: the float64 torch reference (the ONNX file's own
    weights, BN folded before export) on a subsample of output rows, and onnxruntime's and
    torch's float32 errors against it (the floor)."""
    tensors = {}
    for name, (model, data, shape, in_name, out_names, scale, offset, step) in models.items():
        x = analytic_input(shape, scale, offset)
        with torch.no_grad():
            ref64 = [t.numpy() for t in _as_list(model.double()(torch.from_numpy(x).double()))]
            t32 = [t.numpy() for t in _as_list(model.float()(torch.from_numpy(x)))]
        o32 = ort_session(data).run(None, {in_name: x})
        info = {"ops": op_types(data)[0], "opset": op_types(data)[1], "input_scale": scale, "input_offset": offset,
                "row_step": step, "outputs": {}}
        for k, on in enumerate(out_names):
            tensors[f"{name}.{on}"] = ref64[k][0, ::step].astype(np.float32)
            info["outputs"][on] = {"ort_float32_rel": rel_err(o32[k], ref64[k]),
                                   "torch_float32_rel": rel_err(t32[k], ref64[k]), "shape": list(ref64[k].shape),
                                   "max_abs": float(np.abs(ref64[k]).max())}
        meta["graph"][name] = info
    save_st(os.path.join(out, "graph.safetensors"), tensors)


def _as_list(o):
    return list(o) if isinstance(o, (tuple, list)) else [o]


def load_dwpose(path):
    """DWPose's onnxdet/onnxpose/wholebody as a package (wholebody imports them relatively)."""
    import importlib.util
    import types
    pkg = types.ModuleType("dwpose_ref")
    pkg.__path__ = [path]
    sys.modules["dwpose_ref"] = pkg
    mods = {}
    for name in ("onnxdet", "onnxpose", "wholebody"):
        spec = importlib.util.spec_from_file_location(f"dwpose_ref.{name}", os.path.join(path, f"{name}.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[f"dwpose_ref.{name}"] = mod
        spec.loader.exec_module(mod)
        mods[name] = mod
    return mods


def smooth_image(rng, h, w):
    """A smooth random image (compresses well as PNG) with some edges."""
    import cv2
    small = rng.integers(0, 256, (h // 24 + 2, w // 24 + 2, 3)).astype(np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(4):
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        x0, y0 = int(rng.integers(0, w - 10)), int(rng.integers(0, h - 10))
        cv2.rectangle(img, (x0, y0), (x0 + int(rng.integers(5, w // 2)), y0 + int(rng.integers(5, h // 2))), c, -1)
    return img


class StableArgsort(np.ndarray):
    """Scores whose argsort() is numpy's stable sort. DWPose's nms visits boxes in
    scores.argsort()[::-1]; numpy's default sort is not stable and its order of equal scores
    depends on the CPU (SIMD sorts), so DWPose itself has no fixed order for ties. The
    fixtures fix one: the stable order reversed (equal scores: the later box first)."""

    def argsort(self, *args, **kwargs):
        return np.asarray(self).argsort(kind="stable")


def prepost(dw, out, meta):
    """DWPose's own pre/post-processing on fixed inputs."""
    import cv2
    det, pose = dw["onnxdet"], dw["onnxpose"]
    rng = np.random.default_rng(5)
    t = {}
    # -- detector letterbox: images of a few shapes; sums and a subsampled grid of the 640x640 input
    for k, (h, w) in enumerate([(37, 53), (120, 90), (641, 17), (100, 100)]):
        img = smooth_image(rng, h, w) if min(h, w) > 20 else rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
        padded, r = det.preprocess(img, (640, 640))
        cv2.imwrite(os.path.join(out, f"letterbox{k}.png"), img)  # channel order as given (PNG round trip)
        t[f"letterbox{k}.sum"] = padded.astype(np.float64).sum(axis=(1, 2))
        t[f"letterbox{k}.sumsq"] = (padded.astype(np.float64) ** 2).sum(axis=(1, 2))
        t[f"letterbox{k}.grid"] = padded[:, ::13, ::13].astype(np.uint8)
        t[f"letterbox{k}.ratio"] = np.array([r], np.float64)
    # -- grid decode on random raw outputs (float16-representable values stored as float16)
    raw = (rng.standard_normal((1, 8400, 85)) * 2).astype(np.float16).astype(np.float32)
    dec = det.demo_postprocess(raw.copy(), (640, 640))[0]
    t["decode.raw4"] = raw[0, ::5, :4].astype(np.float16)  # every 5th anchor (rows decode independently)
    t["decode.out4"] = dec[::5, :4]
    # -- detector post-processing (decode, obj*cls, xyxy/ratio, class-aware NMS, class 0, > 0.3)
    #    on hand-made raw outputs: mostly empty rows, a few active ones.
    for case in range(4):
        raw = np.zeros((1, 8400, 85), np.float32)
        n = 12
        rows = np.sort(rng.choice(8400, n, replace=False))
        vals = np.zeros((n, 85), np.float32)
        base = rows[0]
        vals[:, 0:2] = rng.uniform(-0.5, 1.5, (n, 2))
        vals[:, 2:4] = rng.uniform(0.5, 3.0, (n, 2))
        vals[:, 4] = rng.uniform(0.2, 1.0, n)
        vals[:, 5:] = rng.uniform(0, 0.4, (n, 80))
        vals[:, 5] = rng.uniform(0.05, 1.0, n)
        if case == 1:  # ties: equal scores on neighbouring overlapping boxes
            vals[1::2, 4] = vals[0::2, 4]
            vals[1::2, 5] = vals[0::2, 5]
            rows = np.sort(rng.choice(np.arange(0, 80), n, replace=False))  # stride-8 cells, overlapping
        if case == 2:  # thresholds: scores exactly at 0.1 / just above; exactly float32(0.3) / just below
            vals[:4, 4] = 1.0
            vals[:4, 5] = np.array([0.1, np.nextafter(np.float32(0.1), np.float32(1)), 0.3,
                                    np.nextafter(np.float32(0.3), np.float32(0))], np.float32)
            vals[4:8, 4] = 1.0
            vals[4:8, 5] = 0.95  # person
            vals[4:8, 6] = 0.99  # a higher-scoring other class on the same boxes
        if case == 3:  # identical boxes with identical scores
            rows[1] = rows[0]
            rows = np.unique(rows)
            vals = vals[:len(rows)]
        raw[0, rows] = vals
        ratio = [0.5, 1.0, 1.7, 0.33][case]
        # inference_detector after session.run, verbatim
        predictions = det.demo_postprocess(raw.copy(), (640, 640))[0]
        boxes = predictions[:, :4]
        scores = predictions[:, 4:5] * predictions[:, 5:]
        boxes_xyxy = np.ones_like(boxes)
        boxes_xyxy[:, 0] = boxes[:, 0] - boxes[:, 2] / 2.
        boxes_xyxy[:, 1] = boxes[:, 1] - boxes[:, 3] / 2.
        boxes_xyxy[:, 2] = boxes[:, 0] + boxes[:, 2] / 2.
        boxes_xyxy[:, 3] = boxes[:, 1] + boxes[:, 3] / 2.
        boxes_xyxy /= ratio
        default = det.multiclass_nms(boxes_xyxy, scores, nms_thr=0.45, score_thr=0.1)
        dets = det.multiclass_nms(boxes_xyxy, scores.view(StableArgsort), nms_thr=0.45, score_thr=0.1)
        if dets is not None:
            dets = np.asarray(dets)
        meta["ties"][f"detpost{case}"] = "same" if (default is None and dets is None) or (
            default is not None and dets is not None and np.array_equal(default, dets)) else "numpy default order differs"
        final = np.zeros((0, 5), np.float64)
        if dets is not None:
            keep = (dets[:, 4] > 0.3) & (dets[:, 5] == 0)
            final = dets[keep][:, :5]
        t[f"detpost{case}.rows"] = rows.astype(np.int64)
        t[f"detpost{case}.values"] = raw[0, rows]
        t[f"detpost{case}.ratio"] = np.array([ratio], np.float64)
        t[f"detpost{case}.boxes"] = final.astype(np.float64)
    # -- nms alone, with ties (arrays of <= 16: numpy's argsort is an insertion sort there)
    for case in range(3):
        m = 12
        b = rng.uniform(0, 50, (m, 2)).astype(np.float32)
        bw = rng.uniform(5, 40, (m, 2)).astype(np.float32)
        boxes = np.concatenate([b, b + bw], 1).astype(np.float32)
        s = rng.choice(np.array([0.2, 0.5, 0.5, 0.7, 0.9], np.float32), m)
        if case == 2:
            boxes[3] = boxes[5]
            s[3] = s[5]
        t[f"nms{case}.boxes"] = boxes
        t[f"nms{case}.scores"] = s
        t[f"nms{case}.keep"] = np.array(det.nms(boxes, s.view(StableArgsort), 0.45), np.int64)
        meta["ties"][f"nms{case}"] = "same" if det.nms(boxes, s, 0.45) == list(t[f"nms{case}.keep"]) else \
            "numpy default order differs"
    # -- pose crop: boxes on an image (wide, tall, partly outside)
    img = smooth_image(rng, 180, 240)
    cv2.imwrite(os.path.join(out, "crop.png"), img)
    crop_boxes = np.array([[30.5, 20.25, 120.0, 170.0], [10.0, 60.0, 230.0, 120.0], [-20.0, -10.0, 60.0, 250.0],
                           [100.3, 40.7, 101.9, 44.1]], np.float64)
    t["crop.boxes"] = crop_boxes
    for k, bx in enumerate(crop_boxes):
        imgs, centers, scales = pose.preprocess(img, [bx], (288, 384))
        center, scale = pose.bbox_xyxy2cs(np.array(bx), padding=1.25)
        fixed = pose._fix_aspect_ratio(scale, aspect_ratio=288 / 384)
        warp = pose.get_warp_matrix(center, fixed, 0, output_size=(288, 384))
        warped = cv2.warpAffine(img, warp, (288, 384), flags=cv2.INTER_LINEAR)
        assert np.array_equal(np.asarray(scales[0]), fixed)
        t[f"crop{k}.center"] = np.asarray(centers[0], np.float64)
        t[f"crop{k}.scale"] = np.asarray(scales[0], np.float64)
        t[f"crop{k}.warp"] = warp.astype(np.float64)
        t[f"crop{k}.warped_sum"] = warped.astype(np.float64).sum(axis=(0, 1))
        t[f"crop{k}.warped_grid"] = warped[::6, ::6]
        # what onnxruntime is handed: the float64 (img - mean) / std as float32, CHW
        t[f"crop{k}.input_grid"] = np.asarray(imgs[0], np.float64).astype(np.float32).transpose(2, 0, 1)[:, ::16, ::16]
    # -- SimCC decode and back to image pixels (logits k/16 stored as int8 => many exact ties)
    K = 24
    lx = rng.integers(-128, 128, (1, K, 576)).astype(np.int8)
    ly = rng.integers(-128, 128, (1, K, 768)).astype(np.int8)
    lx[0, :4] = np.minimum(lx[0, :4], -1)  # keypoints with non-positive maxima (location -1)
    ly[0, 4:6] = np.minimum(ly[0, 4:6], 0)
    sx, sy = lx.astype(np.float32) / 16, ly.astype(np.float32) / 16
    center = np.array([101.25, 77.5])
    scale = np.array([150.0, 200.0])
    kps, sc = pose.postprocess([[sx, sy]], (288, 384), [center], [scale], 2.0)
    t["simcc.x"], t["simcc.y"] = lx, ly
    t["simcc.center"], t["simcc.scale"] = center, scale
    t["simcc.keypoints"] = kps[0].astype(np.float64)
    t["simcc.scores"] = sc[0].astype(np.float32)
    save_st(os.path.join(out, "prepost.safetensors"), t)


def pipeline(dw, out, meta):
    """The whole DWPose pipeline (onnxruntime on the synthetic full-size models) on synthetic images."""
    import cv2
    wb_mod = dw["wholebody"]
    det = calibrated_det_model(dw, [smooth_image(np.random.default_rng(9 + k), 64, 64) for k in range(1)])
    det_data = export(det, (1, 3, 640, 640), "images", ["output"], os.path.join(out, "det.onnx"))
    pmodel = pose_model(3, (288, 384))
    pose_data = export(pmodel, (1, 3, 384, 288), "input", ["simcc_x", "simcc_y"], os.path.join(out, "pose.onnx"))
    write_blind_detector(os.path.join(out, "det_blind.onnx"))
    graph_parity({"det": (det, det_data, (1, 3, 640, 640), "images", ["output"], 1.0, 0.0, 30),
                  "pose": (pmodel, pose_data, (1, 3, 384, 288), "input", ["simcc_x", "simcc_y"], 64.0, 128.0, 5)},
                 out, meta)
    meta["models"] = {"det.onnx": {"ops": op_types(det_data)[0], "bytes": len(det_data)},
                      "pose.onnx": {"ops": op_types(pose_data)[0], "bytes": len(pose_data)}}
    wb = wb_mod.Wholebody.__new__(wb_mod.Wholebody)
    wb.session_det = ort_session(det_data)
    wb.session_pose = ort_session(pose_data)
    rng = np.random.default_rng(9)
    t = {}
    for k, (h, w) in enumerate([(256, 192), (144, 256)]):
        img = smooth_image(rng, h, w)
        cv2.imwrite(os.path.join(out, f"person{k}.png"), img)  # read back with cv::imread: the same bytes
        boxes = wb_mod.inference_detector(wb.session_det, img)
        kp, sc = wb(img)  # 134 OpenPose-ordered entries per person (neck inserted)
        # the 133 keypoints before the OpenPose reordering, and the SimCC margins (top-1 - top-2)
        raw_kp, raw_sc = dw["onnxpose"].inference_pose(wb.session_pose, boxes, img)
        h_in, w_in = wb.session_pose.get_inputs()[0].shape[2:]
        margins = []
        pimgs, _, _ = dw["onnxpose"].preprocess(img, boxes, (w_in, h_in))
        for o in dw["onnxpose"].inference(wb.session_pose, pimgs):
            m = []
            for arr in o:
                srt = np.sort(arr[0], axis=1)
                m.append(srt[:, -1] - srt[:, -2])
            margins.append(np.minimum(m[0], m[1]))
        t[f"person{k}.boxes"] = np.asarray(boxes, np.float64).reshape(-1, 4)
        t[f"person{k}.keypoints133"] = raw_kp.astype(np.float64)
        t[f"person{k}.scores133"] = raw_sc.astype(np.float32)
        t[f"person{k}.margins"] = np.asarray(margins, np.float32)
        t[f"person{k}.openpose_xy"] = kp.astype(np.float64)
        t[f"person{k}.openpose_score"] = sc.astype(np.float64)
        meta["pipeline"][f"person{k}"] = {"size": [h, w], "persons": int(len(boxes))}
    save_st(os.path.join(out, "pipeline.safetensors"), t)


def calibrated_det_model(dw, _unused):
    """The fixture detector: class 0's bias set so that only the top 0.2% of anchors of a
    synthetic image pass 0.3, the other classes' biases low: a few persons per frame with
    distinct scores, and few boxes above the 0.1 NMS threshold, as on real footage."""
    m = det_model()
    with torch.no_grad():
        for p in m.head.cls_preds:
            p.bias[0] = 0.0
            p.bias[1:] = -6.0  # other classes rarely above the 0.1 score threshold, as on real footage
        for p in m.head.reg_preds:  # boxes of a few cells around their anchor
            p.weight *= 0.05
            p.bias[:2] = 0.0
            p.bias[2:] = 1.5
    rng = np.random.default_rng(9)
    img = smooth_image(rng, 256, 192)
    x, _ = dw["onnxdet"].preprocess(img, (640, 640))
    with torch.no_grad():  # class 0's logits at every anchor (cls_preds before the sigmoid)
        feats = m.backbone(torch.from_numpy(x)[None])
        logit = torch.cat([m.head.cls_preds[k](m.head.cls_convs[k](m.head.stems[k](f)))[0, 0].flatten()
                           for k, f in enumerate(feats)]).double().numpy()
    target = np.log(0.5 / 0.5)  # cls sigmoid 0.5 * obj ~0.88 = 0.44 > 0.3 at the top anchors
    shift = target - np.quantile(logit, 0.998)
    with torch.no_grad():
        for p in m.head.cls_preds:
            p.bias[0] = float(shift)
    return m.eval()


def write_blind_detector(path):
    """A detector that never sees anyone: [1, 8400, 85] zeros from ConstantOfShape (tiny file)."""
    import onnx
    from onnx import TensorProto, helper
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [1, 8400, 85])
    node = helper.make_node("ConstantOfShape", ["shape"], ["output"],
                            value=helper.make_tensor("value", TensorProto.FLOAT, [1], [0.0]))
    graph = helper.make_graph([node], "blind", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8400, 85])], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


def full_width(out):
    """The same graphs with the real layer sizes (random weights), for timing only."""
    os.makedirs(out, exist_ok=True)
    export(fold_bn(yolox_model(1, 1.0, 1.0)), (1, 3, 640, 640), "images", ["output"], os.path.join(out, "yolox_l_synthetic.onnx"))
    export(fold_bn(rtmpose_model(2, (288, 384), None, 256, 128, widen=1.0, deepen=1.0)), (1, 3, 384, 288), "input",
           ["simcc_x", "simcc_y"], os.path.join(out, "dw-ll_ucoco_384_synthetic.onnx"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dwpose", help="DWPose's ControlNet-v1-1-nightly/annotator/dwpose directory")
    ap.add_argument("--out", help="fixture directory (tests/fixtures/dwpose)")
    ap.add_argument("--full-width", help="write full-size synthetic models here (timing only)")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.full_width:
        full_width(args.full_width)
    if not args.out:
        return
    if not args.dwpose:
        ap.error("--out needs --dwpose")
    os.makedirs(args.out, exist_ok=True)
    dw = load_dwpose(args.dwpose)
    import cv2
    import onnx
    import onnxruntime
    meta = {"generator": "scripts/gen_dwpose_fixtures.py", "torch": torch.__version__, "numpy": np.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "cv2": cv2.__version__,
            "graph": {}, "pipeline": {}, "ties": {}}
    prepost(dw, args.out, meta)
    pipeline(dw, args.out, meta)
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
