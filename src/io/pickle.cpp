#include "ipa/io/pickle.h"

#include <fmt/format.h>

#include <cstring>
#include <optional>

#include "ipa/core/error.h"

namespace ipa::io {

// Opcode semantics follow the documented pickle protocol (CPython's Lib/pickletools.py
// describes each opcode); this is an independent, restricted implementation.
namespace {

using Kind = PickleValue::Kind;
using G = PickleGlobal;

// torch dtype objects pickle as the globals `torch.<name>`; they load as the string
// "torch.<name>" (the checkpoint reader maps the ones LibTorch has).
const char* const kTorchDtypes[] = {
    "float32",
    "float",
    "float64",
    "double",
    "float16",
    "half",
    "bfloat16",
    "int64",
    "long",
    "int32",
    "int",
    "int16",
    "short",
    "int8",
    "uint8",
    "bool",
    "complex64",
    "cfloat",
    "complex128",
    "cdouble",
    "complex32",
    "chalf",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "uint16",
    "uint32",
    "uint64",
};

struct Allowed {
    const char* module;
    const char* name;
    PickleGlobal global;
};
const Allowed kAllowed[] = {
    {"collections", "OrderedDict", G::ordered_dict},
    {"builtins", "set", G::set},
    {"__builtin__", "set", G::set},
    {"builtins", "frozenset", G::frozenset},
    {"__builtin__", "frozenset", G::frozenset},
    {"torch", "Size", G::torch_size},
    {"torch", "device", G::torch_device},
    {"_codecs", "encode", G::codecs_encode},
    {"torch._utils", "_rebuild_tensor_v2", G::rebuild_tensor_v2},
    {"torch._utils", "_rebuild_tensor_v3", G::rebuild_tensor_v3},
    {"torch._utils", "_rebuild_parameter", G::rebuild_parameter},
    {"torch._utils", "_rebuild_parameter_with_state", G::rebuild_parameter_with_state},
    {"torch._tensor", "_rebuild_from_type_v2", G::rebuild_from_type_v2},
    {"torch", "Tensor", G::tensor_type},
    {"torch._tensor", "Tensor", G::tensor_type},
    {"torch.nn.parameter", "Parameter", G::tensor_type},
};

std::optional<PickleGlobal> lookup_global(const std::string& module, const std::string& name) {
    for (const auto& a : kAllowed) {
        if (module == a.module && name == a.name) return a.global;
    }
    // Storage classes are only names inside persistent ids; the reader checks which it knows.
    const bool storage = name.size() > 7 && name.compare(name.size() - 7, 7, "Storage") == 0;
    if (storage && (module == "torch" || module == "torch.storage")) return G::storage_type;
    return std::nullopt;
}

bool is_torch_dtype(const std::string& module, const std::string& name) {
    if (module != "torch") return false;
    for (const char* d : kTorchDtypes) {
        if (name == d) return true;
    }
    return false;
}

bool is_tensor_rebuild(PickleGlobal g) {
    return g == G::rebuild_tensor_v2 || g == G::rebuild_tensor_v3 || g == G::rebuild_parameter ||
           g == G::rebuild_parameter_with_state || g == G::rebuild_from_type_v2;
}

}  // namespace

std::string escape_for_message(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size() && i < 100; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7f) {
            out.push_back(static_cast<char>(c));
        } else {
            out += fmt::format("\\x{:02x}", c);
        }
    }
    if (s.size() > 100) out += "…";
    return out;
}

const char* pickle_kind_name(Kind kind) {
    static const char* const names[] = {"None", "bool", "int",  "float",  "str",           "bytes", "tuple",
                                        "list", "set",  "dict", "global", "persistent id", "call"};
    const auto i = static_cast<std::size_t>(kind);
    return i < sizeof names / sizeof names[0] ? names[i] : "?";
}

class Unpickler {
public:
    Unpickler(const uint8_t* data, std::size_t size, const std::string& where)
        : data_(data), size_(size), where_(where), budget_(8 * size + (1u << 20)) {}

    Unpickled run() {
        while (true) {
            if (pos_ >= size_) {
                throw CheckpointError(fmt::format(
                    "{}: malformed pickle: stream ends at byte {} without a STOP opcode (truncated?)", where_, pos_));
            }
            op_pos_ = pos_;
            op_ = data_[pos_++];
            if (op_ == '.') break;
            if (!push_simple()) step();
        }
        out_.root_ = pop();
        return std::move(out_);
    }

private:
    [[noreturn]] void fail(const std::string& what) const {
        const char c = (op_ >= 0x20 && op_ < 0x7f) ? static_cast<char>(op_) : '?';
        throw CheckpointError(
            fmt::format("{}: pickle opcode 0x{:02x} ('{}') at byte {}: {}", where_, op_, c, op_pos_, what));
    }

    // ---- stream -------------------------------------------------------------------------
    const uint8_t* take(uint64_t n, const char* what) {
        if (n > size_ - pos_) {
            fail(fmt::format("needs {} bytes of {} but only {} remain in the stream (truncated or corrupt length)", n,
                             what, size_ - pos_));
        }
        const uint8_t* p = data_ + pos_;
        pos_ += static_cast<std::size_t>(n);
        return p;
    }
    uint64_t read_le(int n, const char* what) {
        const uint8_t* p = take(static_cast<uint64_t>(n), what);
        uint64_t v = 0;
        for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
        return v;
    }
    std::string read_text(uint64_t n, const char* what) {
        const uint8_t* p = take(n, what);
        return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
    }
    std::string read_line(const char* what) {
        const void* nl = std::memchr(data_ + pos_, '\n', size_ - pos_);
        if (!nl) fail(fmt::format("{} is not terminated by a newline (truncated)", what));
        std::string s = read_text(static_cast<const uint8_t*>(nl) - (data_ + pos_), what);
        ++pos_;
        return s;
    }
    // Bounds the work of operations that copy (set(list), recorded calls): a stream cannot
    // make the unpickler build much more than its own size.
    void charge(std::size_t n) {
        if (n > budget_) fail("the stream builds far more data than its size allows (refusing)");
        budget_ -= n;
    }

    // ---- values and stack ---------------------------------------------------------------
    PickleValue* make(Kind kind) {
        out_.arena_.push_back(std::make_unique<PickleValue>());
        PickleValue* v = out_.arena_.back().get();
        v->kind = kind;
        return v;
    }
    PickleValue* make_int(int64_t i) {
        PickleValue* v = make(Kind::integer);
        v->integer = i;
        return v;
    }
    PickleValue* make_text(Kind kind, std::string s) {
        PickleValue* v = make(kind);
        v->text = std::move(s);
        return v;
    }
    PickleValue* make_seq(Kind kind, std::vector<PickleValue*> items) {
        PickleValue* v = make(kind);
        v->items = std::move(items);
        return v;
    }

    // MARK opens a new frame: nothing below the last mark can be popped until it is closed.
    std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
    void push(PickleValue* v) { stack_.push_back(v); }
    PickleValue* top() {
        if (stack_.size() <= floor()) fail("stack underflow (no object above the last MARK)");
        return stack_.back();
    }
    PickleValue* pop() {
        PickleValue* v = top();
        stack_.pop_back();
        return v;
    }
    std::vector<PickleValue*> pop_mark() {
        if (marks_.empty()) fail("needs a MARK but none is on the stack");
        const std::size_t m = marks_.back();
        marks_.pop_back();
        std::vector<PickleValue*> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
        stack_.resize(m);
        return items;
    }
    PickleValue* expect(PickleValue* v, Kind kind, const char* what) {
        if (v->kind != kind) {
            fail(fmt::format("{} must be a {}, got a {}", what, pickle_kind_name(kind), pickle_kind_name(v->kind)));
        }
        return v;
    }
    void memo_put(uint64_t index) { memo_[index] = top(); }
    PickleValue* memo_get(uint64_t index) {
        const auto it = memo_.find(index);
        if (it == memo_.end()) fail(fmt::format("memo index {} was never stored", index));
        return it->second;
    }

    // Python dict semantics for hashable keys: a repeated key replaces the value.
    std::optional<std::string> hash_key(const PickleValue* k) {
        switch (k->kind) {
            case Kind::string:
                return "s" + k->text;
            case Kind::bytes:
                return "b" + k->text;
            case Kind::integer:
                return "i" + std::to_string(k->integer);
            case Kind::boolean:
                return std::string(k->boolean ? "i1" : "i0");
            case Kind::none:
                return std::string("n");
            case Kind::floating: {
                const double f = k->floating;
                const bool integral = f >= -9.2e18 && f <= 9.2e18 && f == static_cast<double>(static_cast<int64_t>(f));
                return integral ? "i" + std::to_string(static_cast<int64_t>(f)) : fmt::format("f{}", f);
            }
            case Kind::list:
            case Kind::dict:
            case Kind::set:
                fail(fmt::format("unhashable dict key of type {}", pickle_kind_name(k->kind)));
            default:
                return std::nullopt;  // tuples, globals, …: kept, not de-duplicated
        }
    }
    void set_item(PickleValue* dict, PickleValue* key, PickleValue* value) {
        expect(dict, Kind::dict, "the target of SETITEM(S)");
        if (const auto h = hash_key(key)) {
            if (!dict->dict_index) dict->dict_index = std::make_unique<std::unordered_map<std::string, std::size_t>>();
            const auto [it, inserted] = dict->dict_index->emplace(*h, dict->entries.size());
            if (!inserted) {
                dict->entries[it->second].second = value;
                return;
            }
        }
        dict->entries.emplace_back(key, value);
    }

    // ---- globals and calls --------------------------------------------------------------
    PickleValue* make_global(const std::string& module, const std::string& name) {
        if (is_torch_dtype(module, name)) return make_text(Kind::string, "torch." + name);
        const auto g = lookup_global(module, name);
        if (!g) {
            throw CheckpointError(fmt::format(
                "forbidden global '{}.{}' in {} — a state dict needs only tensors; refusing to load (loading never "
                "executes code)",
                escape_for_message(module), escape_for_message(name), where_));
        }
        PickleValue* v = make_text(Kind::global, module + "." + name);
        v->global = *g;
        return v;
    }

    void check_arity(const PickleValue* fn, const std::vector<PickleValue*>& a, std::size_t lo, std::size_t hi) {
        if (a.size() < lo || a.size() > hi) {
            fail(fmt::format("{} takes {} arguments, got {}", fn->text,
                             lo == hi ? std::to_string(lo) : fmt::format("{} to {}", lo, hi), a.size()));
        }
    }

    std::string latin1_bytes(const std::string& utf8) {
        std::string out;
        for (std::size_t i = 0; i < utf8.size(); ++i) {
            const auto c = static_cast<uint8_t>(utf8[i]);
            if (c < 0x80) {
                out.push_back(static_cast<char>(c));
            } else if ((c == 0xC2 || c == 0xC3) && i + 1 < utf8.size()) {
                const auto d = static_cast<uint8_t>(utf8[++i]);
                out.push_back(static_cast<char>(((c & 0x03) << 6) | (d & 0x3F)));
            } else {
                fail("_codecs.encode argument has characters outside latin-1");
            }
        }
        return out;
    }

    // REDUCE / NEWOBJ: runs an allow-listed data constructor, or records a tensor rebuild.
    PickleValue* call(PickleValue* fn, PickleValue* args_value) {
        if (fn->kind != Kind::global || fn->global == G::storage_type || fn->global == G::tensor_type) {
            fail(fmt::format("cannot call a {}{}", pickle_kind_name(fn->kind),
                             fn->kind == Kind::global ? " (" + fn->text + " is a type, not a function)" : ""));
        }
        const auto& a = expect(args_value, Kind::tuple, "the call arguments")->items;
        if (is_tensor_rebuild(fn->global)) {
            charge(a.size());
            PickleValue* v = make_seq(Kind::call, a);
            v->global = fn->global;
            v->text = fn->text;
            return v;
        }
        switch (fn->global) {
            case G::ordered_dict: {
                check_arity(fn, a, 0, 0);
                PickleValue* d = make(Kind::dict);
                d->ordered = true;
                return d;
            }
            case G::torch_size:
                check_arity(fn, a, 1, 1);
                return expect(a[0], Kind::tuple, "the torch.Size argument");  // immutable: shared
            case G::torch_device: {
                check_arity(fn, a, 1, 2);
                std::string dev = expect(a[0], Kind::string, "the device type")->text;
                if (a.size() == 2 && a[1]->kind == Kind::integer) dev += fmt::format(":{}", a[1]->integer);
                return make_text(Kind::string, dev);
            }
            case G::codecs_encode: {
                check_arity(fn, a, 2, 2);
                const auto& enc = expect(a[1], Kind::string, "the encoding")->text;
                if (enc != "latin1" && enc != "latin-1") {
                    fail(fmt::format("_codecs.encode with encoding '{}', expected 'latin1'", escape_for_message(enc)));
                }
                return make_text(Kind::bytes, latin1_bytes(expect(a[0], Kind::string, "the text")->text));
            }
            case G::set:
            case G::frozenset: {
                check_arity(fn, a, 0, 1);
                if (a.empty()) return make(Kind::set);
                const auto k = a[0]->kind;
                if (k != Kind::list && k != Kind::tuple && k != Kind::set) {
                    fail(fmt::format("set() of a {}", pickle_kind_name(k)));
                }
                charge(a[0]->items.size());
                return make_seq(Kind::set, a[0]->items);
            }
            default:
                fail(fmt::format("{} is not callable", fn->text));
        }
    }

    PickleValue* read_long(uint64_t n) {
        if (n > 8) fail(fmt::format("integer of {} bytes does not fit in 64 bits", n));
        const uint8_t* p = take(n, "integer");
        uint64_t v = 0;
        for (uint64_t i = n; i-- > 0;) v = (v << 8) | p[i];
        if (n > 0 && n < 8 && (p[n - 1] & 0x80)) v |= ~uint64_t{0} << (8 * n);  // sign-extend
        return make_int(static_cast<int64_t>(v));
    }

    // ---- the opcode dispatch ------------------------------------------------------------
    // Opcodes that push one value made from the stream alone.
    bool push_simple() {
        struct Text {
            uint8_t op;
            Kind kind;
            int len_bytes;
            const char* name;
        };
        static const Text texts[] = {
            {'X', Kind::string, 4, "BINUNICODE"},      {0x8c, Kind::string, 1, "SHORT_BINUNICODE"},
            {0x8d, Kind::string, 8, "BINUNICODE8"},    {'T', Kind::string, 4, "BINSTRING"},
            {'U', Kind::string, 1, "SHORT_BINSTRING"}, {'B', Kind::bytes, 4, "BINBYTES"},
            {'C', Kind::bytes, 1, "SHORT_BINBYTES"},   {0x8e, Kind::bytes, 8, "BINBYTES8"},
            {0x96, Kind::bytes, 8, "BYTEARRAY8"},
        };
        for (const auto& t : texts) {
            if (op_ != t.op) continue;
            push(make_text(t.kind, read_text(read_le(t.len_bytes, "length"), t.name)));
            return true;
        }
        static const std::pair<uint8_t, Kind> empties[] = {
            {')', Kind::tuple}, {']', Kind::list}, {'}', Kind::dict}, {0x8f, Kind::set}, {'N', Kind::none}};
        for (const auto& [op, kind] : empties) {
            if (op_ != op) continue;
            push(make(kind));
            return true;
        }
        static const std::pair<uint8_t, Kind> from_mark[] = {{'t', Kind::tuple}, {'l', Kind::list}, {0x91, Kind::set}};
        for (const auto& [op, kind] : from_mark) {
            if (op_ != op) continue;
            push(make_seq(kind, pop_mark()));
            return true;
        }
        static const std::pair<uint8_t, int> ints[] = {{'J', 4}, {'K', 1}, {'M', 2}};  // BININT, BININT1, BININT2
        for (const auto& [op, n] : ints) {
            if (op_ != op) continue;
            const uint64_t v = read_le(n, "integer");
            push(make_int(n == 4 ? static_cast<int32_t>(v) : static_cast<int64_t>(v)));
            return true;
        }
        return false;
    }

    void step() {
        switch (op_) {
            case 0x80: {  // PROTO
                const auto proto = read_le(1, "protocol");
                if (proto > 5) fail(fmt::format("pickle protocol {} (at most 5 supported)", proto));
                break;
            }
            case 0x95: {  // FRAME (advisory framing: the length only has to fit)
                const uint64_t n = read_le(8, "frame length");
                if (n > size_ - pos_) fail(fmt::format("frame of {} bytes runs past the stream", n));
                break;
            }
            case 0x8a:  // LONG1, LONG4
            case 0x8b:
                push(read_long(read_le(op_ == 0x8a ? 1 : 4, "LONG length")));
                break;
            case 0x88:  // NEWTRUE, NEWFALSE
            case 0x89: {
                PickleValue* v = make(Kind::boolean);
                v->boolean = op_ == 0x88;
                push(v);
                break;
            }
            case 'G': {  // BINFLOAT, big-endian
                const uint8_t* p = take(8, "BINFLOAT");
                uint64_t bits = 0;
                for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
                PickleValue* v = make(Kind::floating);
                std::memcpy(&v->floating, &bits, sizeof bits);
                push(v);
                break;
            }
            case 0x85:  // TUPLE1, TUPLE2, TUPLE3
            case 0x86:
            case 0x87: {
                std::vector<PickleValue*> items(op_ - 0x84);
                for (std::size_t i = items.size(); i-- > 0;) items[i] = pop();
                push(make_seq(Kind::tuple, std::move(items)));
                break;
            }
            case '(':
                marks_.push_back(stack_.size());
                break;
            case '0':  // POP, POP_MARK, DUP
                pop();
                break;
            case '1':
                pop_mark();
                break;
            case '2':
                push(top());
                break;
            case 'd': {  // DICT
                const auto items = pop_mark();
                if (items.size() % 2) fail("DICT needs key/value pairs, got an odd item count");
                PickleValue* d = make(Kind::dict);
                for (std::size_t i = 0; i < items.size(); i += 2) set_item(d, items[i], items[i + 1]);
                push(d);
                break;
            }
            case 's': {  // SETITEM
                PickleValue* value = pop();
                PickleValue* key = pop();
                set_item(top(), key, value);
                break;
            }
            case 'u': {  // SETITEMS
                const auto items = pop_mark();
                if (items.size() % 2) fail("SETITEMS needs key/value pairs, got an odd item count");
                PickleValue* d = top();
                for (std::size_t i = 0; i < items.size(); i += 2) set_item(d, items[i], items[i + 1]);
                break;
            }
            case 'a':  // APPEND, APPENDS, ADDITEMS
            case 'e':
            case 0x90: {
                const auto items = op_ == 'a' ? std::vector<PickleValue*>{pop()} : pop_mark();
                const Kind kind = op_ == 0x90 ? Kind::set : Kind::list;
                PickleValue* target =
                    expect(top(), kind, op_ == 0x90 ? "the target of ADDITEMS" : "the target of APPEND(S)");
                target->items.insert(target->items.end(), items.begin(), items.end());
                break;
            }
            case 'q':  // BINPUT, LONG_BINPUT, MEMOIZE
                memo_put(read_le(1, "BINPUT index"));
                break;
            case 'r':
                memo_put(read_le(4, "LONG_BINPUT index"));
                break;
            case 0x94:
                memo_put(memo_.size());
                break;
            case 'h':  // BINGET, LONG_BINGET
                push(memo_get(read_le(1, "BINGET index")));
                break;
            case 'j':
                push(memo_get(read_le(4, "LONG_BINGET index")));
                break;
            case 'c': {  // GLOBAL
                const std::string module = read_line("GLOBAL module name");
                push(make_global(module, read_line("GLOBAL name")));
                break;
            }
            case 0x93: {  // STACK_GLOBAL
                PickleValue* name = expect(pop(), Kind::string, "STACK_GLOBAL name");
                PickleValue* module = expect(pop(), Kind::string, "STACK_GLOBAL module");
                push(make_global(module->text, name->text));
                break;
            }
            case 'R':  // REDUCE, NEWOBJ
            case 0x81: {
                PickleValue* args = pop();
                PickleValue* fn = pop();
                push(call(fn, args));
                break;
            }
            case 0x92: {  // NEWOBJ_EX
                PickleValue* kwargs = expect(pop(), Kind::dict, "NEWOBJ_EX kwargs");
                PickleValue* args = pop();
                PickleValue* cls = pop();
                if (!kwargs->entries.empty()) fail("keyword arguments are not supported");
                push(call(cls, args));
                break;
            }
            case 'b': {  // BUILD: only a state dict's `_metadata` (or a tensor's state) is expected; ignored
                pop();
                const Kind k = top()->kind;
                if (k != Kind::dict && k != Kind::call) {
                    fail(fmt::format("BUILD (setstate) on a {} is not supported", pickle_kind_name(k)));
                }
                break;
            }
            case 'Q': {  // BINPERSID
                PickleValue* pid = pop();
                push(make_seq(Kind::persistent_id, {pid}));
                break;
            }
            case 0x97:
            case 0x98:
                fail("out-of-band buffers (protocol 5) are not supported");
            default:
                fail(
                    "unknown or unsupported opcode (torch.save emits protocol-2 binary opcodes; text protocols 0/1 "
                    "are not supported)");
        }
    }

    const uint8_t* data_;
    std::size_t size_;
    std::string where_;
    std::size_t budget_;
    std::size_t pos_ = 0;
    std::size_t op_pos_ = 0;
    uint8_t op_ = 0;
    std::vector<PickleValue*> stack_;
    std::vector<std::size_t> marks_;
    std::unordered_map<uint64_t, PickleValue*> memo_;
    Unpickled out_;
};

Unpickled unpickle(const uint8_t* data, std::size_t size, const std::string& where) {
    return Unpickler(data, size, where).run();
}

}  // namespace ipa::io
