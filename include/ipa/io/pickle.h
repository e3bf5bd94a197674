#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ipa::io {

/// The globals a pickle may name; any other is refused. The data constructors are run by
/// the unpickler (in C++); calls of the tensor rebuilders are only recorded (`Kind::call`)
/// for the checkpoint reader, which builds the tensors from the archive's storages.
enum class PickleGlobal {
    ordered_dict,                  ///< collections.OrderedDict
    set,                           ///< builtins.set
    frozenset,                     ///< builtins.frozenset
    torch_size,                    ///< torch.Size: its tuple
    torch_device,                  ///< torch.device: the string "cuda:0", …
    codecs_encode,                 ///< _codecs.encode(text, 'latin1'): how protocol 2 stores bytes
    rebuild_tensor_v2,             ///< torch._utils._rebuild_tensor_v2 (recorded)
    rebuild_tensor_v3,             ///< torch._utils._rebuild_tensor_v3 (recorded)
    rebuild_parameter,             ///< torch._utils._rebuild_parameter (recorded)
    rebuild_parameter_with_state,  ///< torch._utils._rebuild_parameter_with_state (recorded)
    rebuild_from_type_v2,          ///< torch._tensor._rebuild_from_type_v2 (recorded)
    storage_type,                  ///< torch.FloatStorage, …, torch.storage.UntypedStorage: a name, never called
    tensor_type,                   ///< torch.Tensor, torch.nn.parameter.Parameter: a name, never called
};

/// One value of an unpickled object graph. Values are owned by their `Unpickled` and refer
/// to each other by pointer (the memo lets one value appear in several places).
struct PickleValue {
    enum class Kind {
        none,
        boolean,
        integer,
        floating,
        string,
        bytes,
        tuple,
        list,
        set,
        dict,
        global,         ///< an allow-listed global (`global`, `text` = "module.name")
        persistent_id,  ///< BINPERSID of items[0] (torch: ('storage', type, key, location, numel))
        call,           ///< a recorded call of `global` (`text`) with arguments `items`
    };
    Kind kind = Kind::none;
    bool boolean = false;
    int64_t integer = 0;
    double floating = 0.0;
    std::string text;  ///< str / bytes contents; "module.name" of a global or a call
    PickleGlobal global = PickleGlobal::ordered_dict;
    bool ordered = false;             ///< dict made by collections.OrderedDict
    std::vector<PickleValue*> items;  ///< tuple / list / set items, call arguments, persistent id
    std::vector<std::pair<PickleValue*, PickleValue*>> entries;  ///< dict, insertion order
    std::unique_ptr<std::unordered_map<std::string, std::size_t>> dict_index;
};

const char* pickle_kind_name(PickleValue::Kind kind);
/// Text from a stream, safe to put in a message: at most 100 bytes, control and non-ASCII
/// bytes escaped as \xNN.
std::string escape_for_message(const std::string& s);

/// The result of `unpickle`: the root value and the arena owning every value.
class Unpickled {
public:
    const PickleValue& root() const { return *root_; }
    /// Number of values created (an upper bound for walking the graph without sharing).
    std::size_t value_count() const { return arena_.size(); }

private:
    friend class Unpickler;
    std::vector<std::unique_ptr<PickleValue>> arena_;
    const PickleValue* root_ = nullptr;
};

/// Runs a restricted unpickler (protocols 2–5) over `data`: data opcodes plus the globals of
/// `PickleGlobal`, implemented here; nothing from the stream is ever executed. `where`
/// ("file:entry") names the stream in errors. Any other global, a malformed or truncated
/// stream, an absurd length or an unsupported opcode throws CheckpointError.
Unpickled unpickle(const uint8_t* data, std::size_t size, const std::string& where);

}  // namespace ipa::io
