#pragma once

/// A small ONNX interpreter on LibTorch: reads an ONNX ModelProto (protobuf wire format,
/// decoded here, no protobuf library) and runs its graph with ATen operators, node by node.
/// It implements the operators of the two DWPose graphs (YOLOX-L detector, RTMPose whole-body
/// pose model with CSPNeXt + RTMCC head) and a few neighbours; any other operator, an
/// unsupported attribute value or external data is a clear ipa::CheckpointError naming the
/// file and the node. docs/dwpose.md says why this and not OpenCV's DNN module.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace ipa::pose::onnx {

/// A graph input or output: its name, element type (ONNX TensorProto.DataType) and shape
/// (-1 for a symbolic or unknown dimension).
struct ValueInfo {
    std::string name;
    int elem_type = 0;
    std::vector<int64_t> shape;
};

/// One graph node as read from the file.
struct Node {
    std::string name, op_type, domain;
    std::vector<std::string> inputs, outputs;  ///< "" = an omitted optional input
    struct Attribute {
        std::string name;
        int type = 0;  ///< AttributeProto.AttributeType
        double f = 0;
        int64_t i = 0;
        std::string s;
        at::Tensor t;
        std::vector<double> floats;
        std::vector<int64_t> ints;
    };
    std::vector<Attribute> attributes;

    const Attribute* attr(const std::string& key) const;
};

/// A loaded model. run() is const and may be called from several threads at once.
class Model {
public:
    /// Reads `path`. Throws ipa::CheckpointError naming the file for a missing or unreadable
    /// file, a file that is not an ONNX model, an operator this interpreter does not
    /// implement (all of them listed), or tensors stored as external data.
    static Model load(const std::filesystem::path& path);
    /// Parses the bytes of a model (`source` names it in errors).
    static Model parse(const std::string& bytes, const std::string& source);

    const std::filesystem::path& path() const { return path_; }
    const std::string& source() const { return source_; }
    /// Graph inputs that are not initializers, and graph outputs, in file order.
    const std::vector<ValueInfo>& inputs() const { return inputs_; }
    const std::vector<ValueInfo>& outputs() const { return outputs_; }
    const std::vector<Node>& nodes() const { return nodes_; }
    int64_t opset() const { return opset_; }
    std::set<std::string> op_types() const;
    /// The number of weight values (initializers and Constant nodes).
    int64_t parameter_count() const;

    /// Runs the graph on `inputs` (one per graph input, in order; float32 unless the graph
    /// says otherwise) and returns the graph outputs in order. Throws ipa::DataError for an
    /// input of the wrong count, type or static shape (naming the input and the file) and
    /// ipa::CheckpointError naming the node when an operator fails.
    std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs) const;

    /// A copy whose floating-point weights are `dtype` (kDouble for reference runs).
    Model to(at::ScalarType dtype) const;
    /// A copy whose floating-point weights live on `device` (e.g. CUDA). run() then takes
    /// its inputs there and a node whose inputs sit on two devices works on the non-CPU one;
    /// integer shape arithmetic (Shape, Gather of shapes, ...) stays on the CPU.
    Model to(at::Device device) const;
    at::Device device() const { return device_; }

    /// Checks that input `index` is a float tensor of shape [1, 3, h, w] with these static
    /// sizes; the message names `what` and the file otherwise.
    void expect_image_input(std::size_t index, int64_t h, int64_t w, const std::string& what) const;

private:
    /// A copy with `f` applied to every floating-point weight (initializers, Constant values).
    Model map_floating(const std::function<at::Tensor(const at::Tensor&)>& f) const;
    std::filesystem::path path_;
    std::string source_;
    int64_t opset_ = 0;
    at::Device device_ = at::kCPU;
    std::vector<ValueInfo> inputs_, outputs_;
    std::vector<Node> nodes_;
    std::map<std::string, at::Tensor> initializers_;
    std::vector<std::vector<std::string>> release_after_;  ///< values no node needs after node i
};

/// The operators Model implements (sorted).
const std::set<std::string>& supported_operators();

}  // namespace ipa::pose::onnx
