#include "ipa/models/t5/tokenizer.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <sentencepiece_processor.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cstdlib>
#include <new>

#include "ipa/core/error.h"

namespace ipa::models::t5 {
namespace fs = std::filesystem;
namespace {

using Processor = sentencepiece::SentencePieceProcessor;
using Status = sentencepiece::util::Status;

/// libsentencepiece loaded privately (see src/models/t5/CMakeLists.txt for why it is not
/// linked): RTLD_LOCAL keeps its bundled protobuf symbols out of the process's global scope,
/// RTLD_DEEPBIND makes the library bind to its own copies. Only the non-virtual entry points
/// (constructor, Status destructor / ToString) are looked up; everything else is a virtual
/// call through the object's vtable. Override the library with IPA_SENTENCEPIECE_LIB.
struct SentencePieceLibrary {
    void* handle = nullptr;
    void (*construct)(void*) = nullptr;                   // SentencePieceProcessor::SentencePieceProcessor()
    void (*destroy_status)(void*) = nullptr;              // util::Status::~Status()
    std::string (*status_string)(const void*) = nullptr;  // util::Status::ToString() const

    static const SentencePieceLibrary& get() {
        static const SentencePieceLibrary lib = open();
        return lib;
    }

private:
    static SentencePieceLibrary open() {
        std::vector<std::string> candidates;
        if (const char* env = std::getenv("IPA_SENTENCEPIECE_LIB")) candidates.emplace_back(env);
        candidates.emplace_back(std::string(IPA_SENTENCEPIECE_LIBDIR) + "/libsentencepiece.so.0");
        candidates.emplace_back("libsentencepiece.so.0");
        candidates.emplace_back("libsentencepiece.so");
        SentencePieceLibrary lib;
        std::string errors;
        for (const auto& c : candidates) {
            lib.handle = ::dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
            if (lib.handle) break;
            const char* e = ::dlerror();
            errors += fmt::format("\n  {}: {}", c, e ? e : "?");
        }
        if (!lib.handle) {
            throw DataError(
                "cannot load the SentencePiece library (install libsentencepiece0 or set "
                "IPA_SENTENCEPIECE_LIB):" +
                errors);
        }
        auto sym = [&](const char* name) {
            void* p = ::dlsym(lib.handle, name);
            if (!p) throw DataError(fmt::format("SentencePiece library lacks symbol {}", name));
            return p;
        };
        lib.construct = reinterpret_cast<void (*)(void*)>(sym("_ZN13sentencepiece22SentencePieceProcessorC1Ev"));
        lib.destroy_status = reinterpret_cast<void (*)(void*)>(sym("_ZN13sentencepiece4util6StatusD1Ev"));
        lib.status_string =
            reinterpret_cast<std::string (*)(const void*)>(sym("_ZNK13sentencepiece4util6Status8ToStringB5cxx11Ev"));
        return lib;
    }
};

/// Runs `call` (a virtual method returning util::Status by value) and returns "" on success,
/// the status text otherwise. The Status lives in a union so that only the library's own
/// destructor runs on it.
template <class F>
std::string status_of(F&& call) {
    union Holder {
        Status s;
        Holder() {}
        ~Holder() {}
    } h;
    new (&h.s) Status(call());
    const auto& lib = SentencePieceLibrary::get();
    std::string msg = h.s.ok() ? std::string() : lib.status_string(&h.s);
    lib.destroy_status(&h.s);
    return msg;
}

std::unique_ptr<Processor> new_processor() {
    const auto& lib = SentencePieceLibrary::get();
    void* mem = ::operator new(sizeof(Processor));
    lib.construct(mem);
    return std::unique_ptr<Processor>(static_cast<Processor*>(mem));  // virtual destructor: the library's
}

}  // namespace

T5Tokenizer::T5Tokenizer() : sp_(new_processor()) {}
T5Tokenizer::T5Tokenizer(T5Tokenizer&&) noexcept = default;
T5Tokenizer& T5Tokenizer::operator=(T5Tokenizer&&) noexcept = default;
T5Tokenizer::~T5Tokenizer() = default;

T5Tokenizer T5Tokenizer::load(const fs::path& path, int64_t text_len) {
    if (text_len < 1) throw ConfigError(fmt::format("tokenizer text_len {} must be positive", text_len));
    fs::path model = path;
    if (fs::is_directory(path)) {
        model = path / "spiece.model";
        if (!fs::exists(model)) {
            const bool has_json = fs::exists(path / "tokenizer.json");
            throw DataError(fmt::format(
                "tokenizer folder '{}' has no spiece.model{}; expected the google/umt5-xxl folder of the Wan release "
                "(spiece.model is the SentencePiece model the C++ tokenizer reads)",
                path.string(), has_json ? " (only tokenizer.json, which this reader does not use)" : ""));
        }
    } else if (!fs::exists(path)) {
        throw DataError(fmt::format(
            "tokenizer '{}' does not exist; pass the google/umt5-xxl folder or its spiece.model", path.string()));
    }
    T5Tokenizer tok;
    tok.model_path_ = model;
    tok.text_len_ = text_len;
    const auto model_str = model.string();
    const auto status = status_of([&] { return tok.sp_->Load(model_str); });
    if (!status.empty()) {
        throw DataError(fmt::format("cannot read SentencePiece model '{}': {}", model_str, status));
    }
    const int n = tok.sp_->GetPieceSize();
    if (n <= kEosId || tok.sp_->IdToPiece(kPadId) != "<pad>" || tok.sp_->IdToPiece(kEosId) != "</s>") {
        throw DataError(
            fmt::format("SentencePiece model '{}' does not have the T5 id layout (id 0 '<pad>', id 1 "
                        "'</s>'); got '{}', '{}'",
                        model.string(), n > 0 ? tok.sp_->IdToPiece(0) : "", n > 1 ? tok.sp_->IdToPiece(1) : ""));
    }
    spdlog::info("tokenizer {}: {} pieces, text_len {}", model.string(), n, text_len);
    return tok;
}

int T5Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }

std::string T5Tokenizer::piece(int id) const {
    if (id < 0 || id >= vocab_size()) return "<out of vocabulary>";
    return sp_->IdToPiece(id);
}

std::vector<int> T5Tokenizer::encode_pieces(std::string_view cleaned) const {
    std::vector<int> ids;
    const auto status = status_of([&] { return sp_->Encode(absl::string_view(cleaned.data(), cleaned.size()), &ids); });
    if (!status.empty()) {
        throw DataError(fmt::format("SentencePiece ({}) failed on a prompt: {}", model_path_.string(), status));
    }
    return ids;
}

std::vector<int64_t> T5Tokenizer::encode(std::string_view prompt) const {
    const auto pieces = encode_pieces(clean_prompt(prompt));
    // HF truncation=True, max_length=text_len with add_special_tokens: room is kept for the EOS.
    const auto keep = std::min<std::size_t>(pieces.size(), static_cast<std::size_t>(text_len_ - 1));
    std::vector<int64_t> ids(pieces.begin(), pieces.begin() + static_cast<std::ptrdiff_t>(keep));
    ids.push_back(kEosId);
    return ids;
}

TokenizedBatch T5Tokenizer::operator()(const std::vector<std::string>& prompts) const {
    const auto b = static_cast<int64_t>(prompts.size());
    TokenizedBatch out;
    out.ids = torch::full({b, text_len_}, kPadId, torch::kLong);
    out.mask = torch::zeros({b, text_len_}, torch::kLong);
    auto ids_a = out.ids.accessor<int64_t, 2>();
    auto mask_a = out.mask.accessor<int64_t, 2>();
    for (int64_t i = 0; i < b; ++i) {
        std::vector<int64_t> ids;
        try {
            ids = encode(prompts[static_cast<std::size_t>(i)]);
        } catch (const DataError& e) {
            throw DataError(fmt::format("prompt {}: {}", i, e.what()));
        }
        for (std::size_t j = 0; j < ids.size(); ++j) {
            ids_a[i][static_cast<int64_t>(j)] = ids[j];
            mask_a[i][static_cast<int64_t>(j)] = 1;
        }
        out.lengths.push_back(static_cast<int64_t>(ids.size()));
    }
    return out;
}

}  // namespace ipa::models::t5
