#!/usr/bin/env python3
"""Reference numbers for tests/loss/test_flow_losses.cpp, from the official IPA snippet
(mdswyz/IPA README: HALO-weighted error, logits = beta/2*(1-t)^2*(ref_err-model_err),
loss = -logsigmoid(logits).mean()) and the Diffusion-DPO form.
Run with Debian torch: /usr/bin/python3 scripts/loss_reference_numbers.py"""
import torch, torch.nn.functional as F
torch.set_printoptions(precision=10)
def snippet_ipa(model_err, ref_err, t, beta):
    logits = 0.5*beta*(1-t)**2*(ref_err-model_err)
    return logits, -F.logsigmoid(logits).mean()
# (c) fixed per-sample errors
et = torch.tensor([0.10, 0.25, 0.40, 0.05], requires_grad=True)
er = torch.tensor([0.12, 0.20, 0.40, 0.30])
t = torch.tensor([0.1, 0.5, 0.9, 0.0])
lg, loss = snippet_ipa(et, er, t, 600.0)
loss.backward()
print("ipa beta600 logits", lg.tolist()); print("ipa beta600 loss %.9g" % loss.item()); print("grad", et.grad.tolist())
et.grad=None
lg, loss = snippet_ipa(et, er, torch.zeros(4), 600.0)  # time weight off == t=0
loss.backward()
print("ipa notw logits", lg.tolist()); print("ipa notw loss %.9g" % loss.item()); print("grad", et.grad.tolist())
# end-to-end HALO + IPA on formula tensors
B,C,T,H,W = 2,2,3,2,3
k = torch.arange(B*C*T*H*W, dtype=torch.float32).reshape(B,C,T,H,W)
pred = torch.sin(0.37*k); target = 0.5*torch.cos(0.11*k); ref_pred = torch.sin(0.37*k+0.05)
km = torch.arange(B*1*(T-1)*H*W, dtype=torch.float32).reshape(B,1,T-1,H,W)
mask = torch.remainder(km, 7)/4 - 0.25
hw = 10.0
def halo_err(p, tg):
    se = (p.float()-tg.float())**2
    m = mask.clamp(0,1)
    vw = 1 + (hw-1)*m
    se = torch.cat([se[:, :, :1], se[:, :, 1:]*vw], dim=2)
    return se.flatten(1).mean(1)
p = pred.clone().requires_grad_(True)
model_err = halo_err(p, target)
with torch.no_grad(): ref_err = halo_err(ref_pred, target)
tt = torch.tensor([0.3, 0.8])
lg, loss = snippet_ipa(model_err, ref_err, tt, 600.0)
print("e2e model_err", model_err.tolist()); print("e2e ref_err", ref_err.tolist()); print("e2e logits", lg.tolist()); print("e2e loss %.9g" % loss.item())
print("e2e unweighted err", ((pred-target)**2).flatten(1).mean(1).tolist())
# (d) DPO, Diffusion-DPO train.py form
tw = torch.tensor([0.10, 0.30]); rw = torch.tensor([0.12, 0.28]); tl = torch.tensor([0.20, 0.25]); rl = torch.tensor([0.18, 0.30])
for name, w in [("const", torch.ones(2)), ("tw", (1-torch.tensor([0.2,0.6]))**2)]:
    inside = -0.5*100.0*w*((tw-tl)-(rw-rl))
    print("dpo", name, inside.tolist(), "%.9g" % (-F.logsigmoid(inside).mean()).item())
