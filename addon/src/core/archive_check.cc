// Pre-load checks of TorchScript archives, each for a way a file crashes libtorch 1.13's loader
// (SIGSEGV) instead of raising an error:
// - a class body assigning a value to an unannotated name (one flipped bit in "__parameters__"
//   does it, found by fuzzing): the loader dereferences the missing annotation;
// - deeply nested source (brackets, blocks, long operator chains): the parser and compiler recurse
//   once per level and overflow the stack (20,000 chained "+" crash an 8 MB stack);
// - a pickle whose memo index or length field is huge (one flipped bit turns an opcode into
//   LONG_BINPUT): the unpickler fills a memo table of billions of entries before failing.
// Not every crafted file is caught (e.g. deeply nested pickles); untrusted archives are loaded
// first in a disposable process.
//
// The TypeScript pre-check (src/artifacts/formats/torchscript-archive.ts) runs first, before any
// byte reaches libtorch: zip layout, every pickle walked (memo indices and nesting depth included),
// storage sizes, no __setstate__. Both exist on purpose, as defence in depth: this one re-checks
// inside the process that loads (the sandbox child, then each pool worker), with libtorch's own
// reader, and covers the TorchScript source, which the TypeScript check does not parse.
#include "core/archive_check.h"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/frontend/lexer.h>
#include <torch/csrc/jit/frontend/parser.h>
#include <torch/csrc/jit/frontend/source_range.h>
#include <torch/csrc/jit/frontend/tree_views.h>

namespace bastion::core {
namespace {

using torch::jit::ErrorReport;

// Far above what PyTorch writes (a few levels, tens of operators per statement). Measured: 2,000
// nested unary minus load in a worker thread's 4 MB stack, 4,000 crash it.
constexpr int kMaxBracketDepth = 256;
constexpr int kMaxBlockDepth = 256;
constexpr int kMaxOperatorsPerStatement = 1024;

bool IsSourceRecord(std::string_view name) {
  return name.substr(0, 5) == "code/" && name.size() > 8 && name.substr(name.size() - 3) == ".py";
}

// Names the loader reads as lists of strings rather than as class constants.
bool IsModuleMetadata(const std::string& name) {
  return name == "__parameters__" || name == "__buffers__" || name == "__forward_pre_hooks__" ||
         name == "__forward_hooks__" || name == "__annotations__" || name == "__slots__";
}

// Mirrors the class-body cases of the loader (SourceImporterImpl::importClass): a value assigned
// to any other plain name is a class constant and must be annotated "name : Final[T] = value".
void CheckClass(const torch::jit::ClassDef& class_def) {
  for (const torch::jit::Stmt& statement : class_def.body()) {
    if (statement.kind() != torch::jit::TK_ASSIGN) continue;
    const torch::jit::Assign assign(statement);
    const auto targets = assign.lhs_list();
    if (targets.size() != 1) {
      throw ErrorReport(assign.range()) << "Expected one assignment target in a class body";
    }
    const torch::jit::Expr target = *targets.begin();
    if (target.kind() != torch::jit::TK_VAR) continue;
    const std::string& name = torch::jit::Var(target).name().name();
    if (IsModuleMetadata(name) || !assign.rhs().present()) continue;
    if (!assign.type().present() || assign.type().get().kind() != torch::jit::TK_SUBSCRIPT) {
      throw ErrorReport(assign.range()) << "Class constant '" << name << "' needs a Final[...] type annotation";
    }
  }
}

[[noreturn]] void RejectNesting(const std::string& record, const std::string& what, int limit) {
  throw std::runtime_error(record + ": " + what + " exceed " + std::to_string(limit));
}

bool IsAtom(int kind) {
  switch (kind) {
    case torch::jit::TK_IDENT:
    case torch::jit::TK_NUMBER:
    case torch::jit::TK_STRINGLITERAL:
    case torch::jit::TK_TRUE:
    case torch::jit::TK_FALSE:
    case torch::jit::TK_NONE:
      return true;
    default:
      return false;
  }
}

// One pass of the (iterative) lexer, before any recursive parsing. Operators, attribute accesses,
// calls and subscripts each add a level to a statement's tree; list, tuple and dict elements do not.
void CheckNesting(const std::string& record, const std::shared_ptr<torch::jit::Source>& source) {
  torch::jit::Lexer lexer(source);
  int brackets = 0;
  int blocks = 0;
  int operators = 0;
  int previous = torch::jit::TK_NEWLINE;
  for (;;) {
    const int kind = lexer.cur().kind;
    bool is_operator = false;
    switch (kind) {
      case torch::jit::TK_EOF:
        return;
      case '(':
      case '[':
      case '{':
        if (++brackets > kMaxBracketDepth) RejectNesting(record, "nested brackets", kMaxBracketDepth);
        // A call or subscript follows an operand; a bracket after an operator or comma is a literal.
        is_operator = IsAtom(previous) || previous == ')' || previous == ']';
        break;
      case ')':
      case ']':
      case '}':
        --brackets;
        break;
      case torch::jit::TK_INDENT:
        if (++blocks > kMaxBlockDepth) RejectNesting(record, "nested blocks", kMaxBlockDepth);
        break;
      case torch::jit::TK_DEDENT:
        --blocks;
        break;
      case torch::jit::TK_NEWLINE:
        operators = 0;
        break;
      case ',':
      case ':':
        break;
      default:
        is_operator = !IsAtom(kind);
    }
    if (is_operator && ++operators > kMaxOperatorsPerStatement) {
      RejectNesting(record, "operators in one statement", kMaxOperatorsPerStatement);
    }
    previous = kind;
    lexer.next();
  }
}

// Parses one source file the way the loader does: optional version line, imports, then
// classes and functions.
void CheckSource(const std::string& record, std::string text) {
  auto source = std::make_shared<torch::jit::Source>(std::move(text), record, 0);
  CheckNesting(record, source);
  torch::jit::Parser parser(source);
  torch::jit::Lexer& lexer = parser.lexer();
  if (lexer.cur().kind == torch::jit::TK_IDENT && lexer.cur().text() == "op_version_set") {
    lexer.next();
    lexer.expect('=');
    lexer.expect(torch::jit::TK_NUMBER);
    lexer.expect(torch::jit::TK_NEWLINE);
  }
  while (lexer.cur().kind != torch::jit::TK_EOF) {
    while (lexer.nextIf(torch::jit::TK_IMPORT)) {
      while (lexer.cur().kind != torch::jit::TK_NEWLINE && lexer.cur().kind != torch::jit::TK_EOF) {
        lexer.next();
      }
      lexer.expect(torch::jit::TK_NEWLINE);
    }
    switch (lexer.cur().kind) {
      case torch::jit::TK_CLASS_DEF:
        CheckClass(torch::jit::ClassDef(parser.parseClass()));
        break;
      case torch::jit::TK_DEF:
        parser.parseFunction(/*is_method=*/false);
        break;
      case torch::jit::TK_EOF:
        break;
      default:
        throw ErrorReport(lexer.cur().range)
            << "Unexpected token in code import: " << torch::jit::kindToString(lexer.cur().kind);
    }
  }
}

// A non-executing walk over the opcodes of a pickle (protocols 0-5): every length and memo index
// must fit the pickle, so the unpickler never allocates more than the file could describe.
void CheckPickle(const std::string& record, std::string_view pickle) {
  auto reject = [&record](size_t at, const std::string& what) {
    throw std::runtime_error(record + ": " + what + " at byte " + std::to_string(at));
  };
  size_t pos = 0;
  uint64_t memo_size = 0;
  auto take = [&](size_t at, size_t n) -> uint64_t {  // little-endian unsigned argument
    if (n > pickle.size() - pos) reject(at, "truncated pickle");
    uint64_t value = 0;
    for (size_t i = 0; i < n; ++i) value |= uint64_t{static_cast<uint8_t>(pickle[pos + i])} << (8 * i);
    pos += n;
    return value;
  };
  auto skip = [&](size_t at, uint64_t n) {
    if (n > pickle.size() - pos) reject(at, "pickle length field past the end");
    pos += static_cast<size_t>(n);
  };
  auto skip_line = [&](size_t at) {
    const size_t end = pickle.find('\n', pos);
    if (end == std::string_view::npos) reject(at, "unterminated pickle argument");
    pos = end + 1;
  };
  auto memo_put = [&](size_t at, uint64_t index) {
    if (index > memo_size) reject(at, "pickle memo index out of order");
    if (index == memo_size) ++memo_size;
  };
  while (pos < pickle.size()) {
    const size_t at = pos;
    const auto opcode = static_cast<uint8_t>(pickle[pos++]);
    switch (opcode) {
      case '.':  // STOP
        return;
      case '(':
      case '0':
      case '1':
      case '2':
      case 'N':
      case 'Q':
      case 'R':
      case 'a':
      case 'b':
      case 'd':
      case '}':
      case 'e':
      case 'l':
      case ']':
      case 'o':
      case 's':
      case 't':
      case ')':
      case 'u':
      case 0x81:
      case 0x85:
      case 0x86:
      case 0x87:
      case 0x88:
      case 0x89:
      case 0x8f:
      case 0x90:
      case 0x91:
      case 0x92:
      case 0x93:
      case 0x97:
      case 0x98:
        break;    // no argument
      case 0x94:  // MEMOIZE
        ++memo_size;
        break;
      case 'F':
      case 'I':
      case 'L':
      case 'P':
      case 'S':
      case 'V':
      case 'g':
        skip_line(at);
        break;
      case 'c':
      case 'i':  // GLOBAL, INST: module and name lines
        skip_line(at);
        skip_line(at);
        break;
      case 'p': {  // PUT with a decimal index
        const size_t end = pickle.find('\n', pos);
        if (end == std::string_view::npos || end - pos > 19) reject(at, "bad pickle memo index");
        uint64_t index = 0;
        for (size_t i = pos; i < end; ++i) {
          if (pickle[i] < '0' || pickle[i] > '9') reject(at, "bad pickle memo index");
          index = index * 10 + static_cast<uint64_t>(pickle[i] - '0');
        }
        pos = end + 1;
        memo_put(at, index);
        break;
      }
      case 'q':  // BINPUT
        memo_put(at, take(at, 1));
        break;
      case 'r':  // LONG_BINPUT
        memo_put(at, take(at, 4));
        break;
      case 'h':
      case 'K':
      case 0x80:
      case 0x82:
        take(at, 1);
        break;
      case 'M':
      case 0x83:
        take(at, 2);
        break;
      case 'j':
      case 'J':
      case 0x84:
        take(at, 4);
        break;
      case 'G':
      case 0x95:  // BINFLOAT; FRAME (its opcodes follow inline)
        take(at, 8);
        break;
      case 'U':
      case 'C':
      case 0x8a:
      case 0x8c:  // 1-byte length, then data
        skip(at, take(at, 1));
        break;
      case 'T':
      case 'X':
      case 'B':
      case 0x8b:  // 4-byte length, then data
        skip(at, take(at, 4));
        break;
      case 0x8d:
      case 0x8e:
      case 0x96:  // 8-byte length, then data
        skip(at, take(at, 8));
        break;
      default:
        reject(at, "unknown pickle opcode " + std::to_string(opcode));
    }
  }
  reject(pos, "pickle without STOP");
}

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

void CheckArchive(const std::shared_ptr<caffe2::serialize::ReadAdapterInterface>& archive) {
  caffe2::serialize::PyTorchStreamReader reader(archive);
  for (const std::string& record : reader.getAllRecords()) {
    const bool is_pickle = EndsWith(record, ".pkl") || EndsWith(record, ".debug_pkl");
    if (!is_pickle && !IsSourceRecord(record)) continue;
    const auto [data, size] = reader.getRecord(record);
    const std::string_view bytes(static_cast<const char*>(data.get()), size);
    if (is_pickle) {
      CheckPickle(record, bytes);
    } else {
      CheckSource(record, std::string(bytes));
    }
  }
}

}  // namespace bastion::core
