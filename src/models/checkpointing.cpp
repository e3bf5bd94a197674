#include "ipa/models/checkpointing.h"

#include <torch/torch.h>

namespace ipa::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct FnHolder : torch::CustomClassHolder {
    TensorFn fn;
};

// ref: torch.utils.checkpoint (use_reentrant=True), re-implemented on the C++ autograd API.
struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
    static variable_list forward(AutogradContext* ctx, TensorFn fn, at::TensorList inputs) {
        auto holder = c10::make_intrusive<FnHolder>();
        holder->fn = std::move(fn);
        std::vector<at::Tensor> in(inputs.begin(), inputs.end());
        c10::List<bool> needs_grad;
        for (const auto& t : in) needs_grad.push_back(t.requires_grad());
        ctx->save_for_backward(in);
        ctx->saved_data["needs_grad"] = needs_grad;
        auto out = holder->fn(in);                                 // grad mode is off here: no activations are kept
        ctx->saved_data["fn"] = at::IValue::make_capsule(holder);  // closures travel as capsules
        return out;
    }

    static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
        const auto saved = ctx->get_saved_variables();
        const auto needs_grad = ctx->saved_data["needs_grad"].toBoolList();
        auto holder = c10::static_intrusive_pointer_cast<FnHolder>(ctx->saved_data["fn"].toCapsule());
        std::vector<at::Tensor> in;
        in.reserve(saved.size());
        for (std::size_t i = 0; i < saved.size(); ++i) {
            auto d = saved[i].detach();
            if (needs_grad.get(i)) d.requires_grad_(true);
            in.push_back(d);
        }
        std::vector<at::Tensor> out;
        {
            torch::AutoGradMode enable(true);
            out = holder->fn(in);
        }
        variable_list outs, grads;
        for (std::size_t i = 0; i < out.size() && i < grad_out.size(); ++i) {
            if (grad_out[i].defined() && out[i].requires_grad()) {
                outs.push_back(out[i]);
                grads.push_back(grad_out[i]);
            }
        }
        if (!outs.empty()) torch::autograd::backward(outs, grads);
        variable_list result{at::Tensor()};  // for `fn`
        for (auto& t : in) result.push_back(t.requires_grad() ? t.grad() : at::Tensor());
        return result;
    }
};

}  // namespace

std::vector<at::Tensor> checkpoint(const TensorFn& fn, const std::vector<at::Tensor>& inputs) {
    if (!torch::GradMode::is_enabled()) return fn(inputs);
    bool any = false;
    for (const auto& t : inputs) any = any || t.requires_grad();
    if (any) return CheckpointFunction::apply(fn, at::TensorList(inputs));
    // No input needs grad (e.g. frozen embeddings feeding a LoRA block): a dummy input that
    // does keeps the outputs in the graph, so the parameters inside still get gradients.
    std::vector<at::Tensor> padded = inputs;
    padded.push_back(torch::empty({0}).requires_grad_(true));
    const std::size_t n = inputs.size();
    TensorFn inner = [fn, n](const std::vector<at::Tensor>& v) {
        return fn(std::vector<at::Tensor>(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n)));
    };
    return CheckpointFunction::apply(inner, at::TensorList(padded));
}

}  // namespace ipa::models
