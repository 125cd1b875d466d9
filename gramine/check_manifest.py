"""Renders the manifest template as gramine-manifest would and checks the rules the enclave's security rests on,
printing each rule it checked. Needs only Jinja2 and Python 3.11's tomllib, so it runs where Gramine is not
installed (CI).

    python3 check_manifest.py TEMPLATE                     fixed values only
    python3 check_manifest.py TEMPLATE -Dnode=... -D...    also this machine's values (make check passes them)

With this machine's values it also runs ldd on node, prlimit, build/Release/bastion.node and every .node file
under node_modules, and checks that each library is trusted where the enclave's loader opens it and that this is
the file ldd found. Exit status: 0 when every rule holds; 1 when one is broken (each named on stderr); 2 when the
check cannot run (the template does not render, the addon is not built).
"""
import json
import os
import re
import subprocess
import sys
import tomllib

import jinja2

RUNTIME_DIR = "/usr/lib/x86_64-linux-gnu/gramine/runtime/glibc"

# The libraries of Gramine's patched glibc (subprojects/packagefiles/glibc-2.40/meson.build): inside the enclave
# they come from the runtime folder on /lib, never from the host. native-libs.sh leaves the same names out.
GRAMINE_GLIBC = re.compile(
    r"^(ld-linux.*|libc|libm|libmvec|libdl|libpthread|librt|libresolv|libutil|libnsl|libanl|libthread_db|libnss_.*)[.]so[.]")

# Threads the server has whatever the pool (node 20.20, UV_THREADPOOL_SIZE=4, --v8-pool-size=4) and Gramine's own.
NODE_THREADS = 12
GRAMINE_THREADS = 3
GIB = 1024**3


class FakeGramine:
    libos = "/usr/lib/x86_64-linux-gnu/gramine/libsysdb.so"

    @staticmethod
    def runtimedir(libc="glibc"):
        return RUNTIME_DIR


# Strings, as gramine-manifest -D passes them.
FIXED = dict(
    node="/usr/bin/node", prlimit="/usr/bin/prlimit", app_dir="/opt/bastion", data_dir="/srv/bastion",
    native_libs="/usr/lib/libgloo.so.0 /usr/lib/x86_64-linux-gnu/libc10.so /usr/lib/x86_64-linux-gnu/libtorch_cpu.so",
    lib_dirs="/usr/lib /usr/lib/x86_64-linux-gnu", port="8443", pool_size="2", torch_threads="2", heap_mb="2048",
    enclave_size="16G", sealing_key="mrenclave", isv_prod_id="1", isv_svn="1", sgx="1", edmm="0", log_level="error",
    admin_token_verifier="bstv_" + "0" * 32 + "_" + "0" * 64,
)


class CannotCheck(Exception):
    pass


def parse_defines(args):
    values = {}
    for arg in args:
        if not arg.startswith("-D") or "=" not in arg:
            raise CannotCheck(f"expected -Dname=value, got {arg!r}")
        name, value = arg[2:].split("=", 1)
        values[name] = value
    return values


def render(text, values):
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    try:
        return tomllib.loads(env.from_string(text).render(gramine=FakeGramine(), **values))
    except (jinja2.TemplateError, tomllib.TOMLDecodeError) as err:
        raise CannotCheck(f"the template does not render to TOML: {err}") from err


def parse_size(text):
    match = re.fullmatch(r"(\d+)([KMG]?)", str(text))
    if not match:
        return None
    return int(match[1]) * {"": 1, "K": 1024, "M": 1024**2, "G": GIB}[match[2]]


def toml(value):
    """A value as TOML writes it, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else str(value)


def as_int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def uri_path(entry):
    uri = entry["uri"] if isinstance(entry, dict) else entry
    return uri[len("file:"):] if uri.startswith("file:") else None


def is_trusted(path, trusted):
    return any(t == path or (t.endswith("/") and path.startswith(t)) for t in trusted)


class EnclaveFs:
    """Where an enclave path leads on the host, through fs.mounts (the longest mount path wins). Gramine checks a
    file against sgx.trusted_files by that host path (the mount's uri + the rest), not by the path inside."""

    def __init__(self, manifest):
        self.mounts = sorted(manifest.get("fs", {}).get("mounts", []), key=lambda m: len(m.get("path", "")), reverse=True)

    def lookup(self, path):
        """('runtime' or 'chroot', host path), ('other', None) for tmpfs and encrypted, (None, None) if unmounted."""
        for mount in self.mounts:
            point = mount.get("path", "").rstrip("/")
            if path != point and not path.startswith(point + "/"):
                continue
            if mount.get("type", "chroot") != "chroot":
                return "other", None
            host = uri_path(mount["uri"]).rstrip("/")
            return "runtime" if host == RUNTIME_DIR else "chroot", host + path[len(point):]
        return None, None


def loader_opens(name, ld_library_path, fs):
    """(enclave path, host path, kind) where glibc's loader finds `name` (LD_LIBRARY_PATH in order), or Nones.
    Gramine's runtime is not installed here: it holds exactly GRAMINE_GLIBC."""
    for folder in ld_library_path:
        path = folder.rstrip("/") + "/" + name
        kind, host = fs.lookup(path)
        if (kind == "runtime" and GRAMINE_GLIBC.match(name)) or (kind == "chroot" and os.path.isfile(host)):
            return path, host, kind
    return None, None, None


def native_files(app_dir, node, prlimit):
    """The ELF files whose libraries the enclave must trust: node, prlimit, the addon, each .node under node_modules."""
    addon = os.path.join(app_dir, "build", "Release", "bastion.node")
    if not os.path.isfile(addon):
        raise CannotCheck(f"{addon} is missing: build the addon first (npm run build:addon); the check runs ldd on it")
    found = subprocess.run(["find", "-L", os.path.join(app_dir, "node_modules"), "-name", "*.node", "-type", "f"],
                           capture_output=True, text=True, check=False).stdout.split()
    return [node, prlimit, addon, *sorted(found)]


def ldd(files):
    """[(file, name, path as ldd prints it or None when not found)] for every library ldd reports."""
    result = subprocess.run(["ldd", *files], capture_output=True, text=True, check=False)
    libraries, current = [], files[0]
    for line in result.stdout.splitlines():
        if not line.startswith("\t") and line.endswith(":"):
            current = line[:-1]
            continue
        words = line.split()
        if len(words) >= 3 and words[1] == "=>":
            libraries.append((current, words[0], words[2] if words[2].startswith("/") else None))
        elif words and words[0].startswith("/") and len(words) >= 2 and words[1].startswith("("):
            libraries.append((current, os.path.basename(words[0]), words[0]))
    return libraries


def check(manifest, values, machine):
    """[(rule, problems)]; `machine` runs the rules that need this machine's files (ldd)."""
    loader = manifest.get("loader", {})
    env = loader.get("env", {})
    sgx = manifest.get("sgx", {})
    sys_ = manifest.get("sys", {})
    fs = EnclaveFs(manifest)
    mounts = {m.get("path"): m for m in manifest.get("fs", {}).get("mounts", [])}
    trusted = [p for p in (uri_path(e) for e in sgx.get("trusted_files", [])) if p is not None]
    argv = loader.get("argv", [])
    app_dir, data_dir = values["app_dir"], values["data_dir"].rstrip("/")
    env_text = {k: (v if isinstance(v, str) else v.get("value")) for k, v in env.items() if isinstance(v, (str, dict))}
    ld_library_path = str(env_text.get("LD_LIBRARY_PATH") or "").split(":")
    results = []

    def rule(text, *problems):
        results.append((text, [p for p in problems if p]))

    rule(f"libos.entrypoint is node ({values['node']})",
         manifest.get("libos", {}).get("entrypoint") != values["node"] and f"it is {toml(manifest.get('libos', {}).get('entrypoint'))}")
    rule("argv is fixed in the manifest: loader.argv runs dist/main.js; no insecure__use_cmdline_argv, no argv_src_file",
         not (argv and argv[0] == "node" and argv[-1] == f"{app_dir}/dist/main.js") and f"loader.argv is {toml(argv)}",
         "insecure__use_cmdline_argv" in loader and "loader.insecure__use_cmdline_argv is set",
         "argv_src_file" in loader and "loader.argv_src_file is set")
    rule("the environment is fixed in the manifest: no insecure__use_host_env, no env_src_file, no passthrough",
         "insecure__use_host_env" in loader and "loader.insecure__use_host_env is set",
         "env_src_file" in loader and "loader.env_src_file is set",
         *(f"loader.env.{name} takes its value from the host ({toml(value)})" for name, value in env.items()
           if not isinstance(value, str) and not (isinstance(value, dict) and set(value) == {"value"})))
    data = mounts.get("/data", {})
    key_name = data.get("key_name")
    rule("/data is an encrypted mount keyed by the SGX sealing key (_sgx_mrenclave or _sgx_mrsigner); no insecure keys",
         not (data.get("type") == "encrypted" and key_name in ("_sgx_mrenclave", "_sgx_mrsigner"))
         and f"/data is {toml(data) if data else 'not mounted'}",
         data.get("uri") and uri_path(data["uri"]).rstrip("/") != data_dir and f"/data is {data['uri']}, not file:{data_dir}",
         "insecure__keys" in manifest.get("fs", {}) and "fs.insecure__keys is set")
    rule("the server keeps its data in /data, seals with the mount's key and refuses to start without an enclave",
         env_text.get("BASTION_DATA_DIR") != "/data" and f"BASTION_DATA_DIR is {toml(env_text.get('BASTION_DATA_DIR'))}",
         key_name and env_text.get("BASTION_SEALING_KEY") != key_name.removeprefix("_sgx_")
         and f"BASTION_SEALING_KEY is {toml(env_text.get('BASTION_SEALING_KEY'))} but /data uses {key_name}",
         env_text.get("BASTION_REQUIRE_ENCLAVE") != "true" and "BASTION_REQUIRE_ENCLAVE is not true")
    rule("the first admin comes from a token verifier in the manifest (the sealed data folder holds no readable token)",
         not re.fullmatch(r"bstv_[0-9a-f]{32}_[0-9a-f]{64}", str(env_text.get("BASTION_ADMIN_TOKEN_VERIFIER") or ""))
         and f"BASTION_ADMIN_TOKEN_VERIFIER is {toml(env_text.get('BASTION_ADMIN_TOKEN_VERIFIER'))}: make one with npx bastion token new")
    inside_data = [t for t in trusted if t.rstrip("/") == data_dir or t.startswith(data_dir + "/") or data_dir.startswith(t)
                   and t.endswith("/")]
    rule(f"the data folder ({data_dir}) is neither trusted nor allowed; no sgx.allowed_files; file_check_policy strict",
         inside_data and f"trusted: {', '.join(inside_data)}",
         "allowed_files" in sgx and f"sgx.allowed_files lets the host feed unmeasured files: {toml(sgx['allowed_files'])}",
         sgx.get("file_check_policy", "strict") != "strict" and f"sgx.file_check_policy is {toml(sgx['file_check_policy'])}")
    rule("sgx.debug = false (the host can read a debug enclave's memory)",
         sgx.get("debug") is not False and f"sgx.debug is {toml(sgx['debug']) if 'debug' in sgx else 'not set'}")
    rule('sgx.remote_attestation = "dcap"',
         sgx.get("remote_attestation") != "dcap" and f"it is {toml(sgx.get('remote_attestation'))}")
    rule("loader.log_level is none, error or warning (debug and trace print system calls and their data to the host)",
         loader.get("log_level") not in ("none", "error", "warning") and f"it is {toml(loader.get('log_level'))}")
    rule("/tmp is a tmpfs; libuv has eventfd; SIGTERM reaches the graceful shutdown",
         mounts.get("/tmp", {}).get("type") != "tmpfs" and "/tmp is not a tmpfs",
         sys_.get("insecure__allow_eventfd") is not True and "sys.insecure__allow_eventfd is not true",
         sys_.get("enable_sigterm_injection") is not True and "sys.enable_sigterm_injection is not true")

    pool, torch = as_int(env_text.get("BASTION_POOL_SIZE")), as_int(env_text.get("BASTION_TORCH_THREADS"))
    needed = NODE_THREADS + GRAMINE_THREADS + pool * (1 + torch)
    rule(f"sgx.max_threads ≥ {NODE_THREADS} (node) + {GRAMINE_THREADS} (Gramine) + pool size × (1 + torch threads) = {needed}",
         not (pool and torch) and "BASTION_POOL_SIZE and BASTION_TORCH_THREADS must be set",
         env_text.get("UV_THREADPOOL_SIZE") != "4" and "UV_THREADPOOL_SIZE must be 4 (the count assumes it)",
         "--v8-pool-size=4" not in argv and "argv must hold --v8-pool-size=4 (the count assumes it)",
         as_int(sgx.get("max_threads")) < needed and f"sgx.max_threads is {toml(sgx.get('max_threads'))}")
    heap = next((int(a.split("=", 1)[1]) for a in argv if re.fullmatch(r"--max-old-space-size=\d+", a)), None)
    size = parse_size(sgx.get("enclave_size"))
    need_bytes = (2 * GIB + (1 + pool) * (heap or 0) * 1024**2 + pool * 2 * GIB)
    rule("sgx.enclave_size is a power of two ≥ 2 GiB + (1 + pool size) × --max-old-space-size + pool size × 2 GiB"
         f" = {need_bytes / GIB:g} GiB",
         heap is None and "argv has no --max-old-space-size",
         (size is None or size & (size - 1)) and f"sgx.enclave_size {toml(sgx.get('enclave_size'))} is not a power of two",
         size is not None and size < need_bytes and f"sgx.enclave_size is {sgx.get('enclave_size')}")

    required = [values["node"], values["prlimit"], f"{app_dir}/dist/", f"{app_dir}/node_modules/",
                f"{app_dir}/build/Release/bastion.node", f"{app_dir}/package.json", f"{RUNTIME_DIR}/"]
    rule("node, prlimit, dist/, node_modules/, the addon, package.json and Gramine's runtime are trusted",
         *(f"{r} is not a trusted file" for r in required if r not in trusted))
    folders = [t for t in trusted if t.endswith("/") and t not in (f"{RUNTIME_DIR}/", f"{app_dir}/dist/", f"{app_dir}/node_modules/")]
    host_glibc = [t for t in trusted if GRAMINE_GLIBC.match(os.path.basename(t)) and not t.startswith(f"{RUNTIME_DIR}/")]
    rule("libraries are trusted one by one (the only folders trusted whole: Gramine's runtime, dist/, node_modules/), "
         "no host glibc",
         *(f"the folder {f} is trusted whole" for f in folders),
         *(f"{t} is the host's glibc; Gramine's replaces it" for t in host_glibc))
    rule("LD_LIBRARY_PATH starts with /lib, mounted on Gramine's runtime (its glibc, not the host's)",
         ld_library_path[0] != "/lib" and f"LD_LIBRARY_PATH is {toml(env_text.get('LD_LIBRARY_PATH'))}",
         fs.lookup("/lib/libc.so.6")[0] != "runtime" and f"/lib is not mounted on {RUNTIME_DIR}")
    listed = values["native_libs"].split()
    rule(f"each of the {len(listed)} listed libraries (native_libs) is trusted, mounted and on LD_LIBRARY_PATH",
         *(f"{lib} is listed but not trusted" for lib in listed if lib not in trusted),
         *(f"{lib} is listed but no mount shows it at that path" for lib in listed if fs.lookup(lib) != ("chroot", lib)),
         *(f"{lib}'s folder is not on LD_LIBRARY_PATH" for lib in listed if os.path.dirname(lib) not in ld_library_path))

    if machine:
        files = native_files(app_dir, values["node"], values["prlimit"])
        libraries = ldd(files)
        problems, seen = [], set()
        for file, name, path in libraries:
            if (name, path) in seen or name.startswith("linux-vdso"):
                continue
            seen.add((name, path))
            if path is None:
                problems.append(f"{name}, needed by {file}: ldd does not find it")
                continue
            real = os.path.realpath(path)
            where = f"{name} (ldd: {path} -> {real}, for {os.path.relpath(file, app_dir) if file.startswith(app_dir) else file})"
            opened, host, kind = loader_opens(name, ld_library_path, fs)
            if opened is None:
                problems.append(f"{where}: no folder on LD_LIBRARY_PATH holds it inside the enclave")
            elif kind == "chroot" and os.path.realpath(host) != real:
                problems.append(f"{where}: the enclave's loader opens {opened} (-> {os.path.realpath(host)}), not that file")
            elif not is_trusted(host, trusted):
                shown = opened if host == opened else f"{opened} (on the host {host})"
                problems.append(f"{where}: the enclave's loader opens {shown}, which is not a trusted file")
        modules = len(files) - 3
        rule(f"every library that ldd reports for node, prlimit, the addon and {modules} module(s) under node_modules "
             f"({len(seen)}) is trusted where the enclave's loader opens it, and is the file ldd found", *problems)
    return results


def report(label, results):
    broken = 0
    print(f"gramine check: {label}")
    for text, problems in results:
        if not problems:
            print(f"  ok    {text}")
            continue
        broken += 1
        print(f"gramine check: {label}: FAIL {text}", file=sys.stderr)
        for problem in problems[:20]:
            print(f"    - {problem}", file=sys.stderr)
        if len(problems) > 20:
            print(f"    - and {len(problems) - 20} more", file=sys.stderr)
    return broken


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    path = argv[0]
    try:
        machine = parse_defines(argv[1:])
        with open(path, encoding="utf-8") as f:
            text = f.read()
        broken = report(f"{path}, fixed values (app {FIXED['app_dir']})", check(render(text, FIXED), FIXED, machine=False))
        render(text, {**FIXED, "sgx": "0"})  # the gramine-direct variant must render too
        if machine:
            values = {**FIXED, **machine}
            label = f"{path}, this machine's values (app {values['app_dir']}, node {values['node']})"
            broken += report(label, check(render(text, values), values, machine=True))
    except (CannotCheck, OSError) as err:
        print(f"gramine check: {err}", file=sys.stderr)
        return 2
    if broken:
        print(f"gramine check: {path} breaks {broken} rule(s)", file=sys.stderr)
        return 1
    print(f"gramine check: {path} renders and meets every rule")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
