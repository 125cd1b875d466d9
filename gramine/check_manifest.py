"""Renders the manifest template with fixed values, as gramine-manifest would, and checks the rules the
enclave's security rests on. Needs only Jinja2 and Python 3.11's tomllib, so it runs where Gramine is
not installed (CI). Exits non-zero naming every rule broken.

    python3 check_manifest.py bastion.manifest.template
"""
import sys
import tomllib

import jinja2


class FakeGramine:
    libos = "/usr/lib/x86_64-linux-gnu/gramine/libsysdb.so"

    @staticmethod
    def runtimedir():
        return "/usr/lib/x86_64-linux-gnu/gramine/runtime/glibc"


VALUES = dict(
    gramine=FakeGramine(), node="/usr/bin/node", app_dir="/opt/bastion", data_dir="/srv/bastion",
    arch_libdir="/lib/x86_64-linux-gnu", port=8443, pool_size=2, torch_threads=2, enclave_size="16G",
    debug=0, edmm=0, log_level="error",
)


def main(path):
    with open(path, encoding="utf-8") as f:
        text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(f.read()).render(**VALUES)
    manifest = tomllib.loads(text)
    problems = []

    def need(condition, message):
        if not condition:
            problems.append(message)

    loader = manifest.get("loader", {})
    sys_ = manifest.get("sys", {})
    sgx = manifest.get("sgx", {})
    need(manifest.get("libos", {}).get("entrypoint") == VALUES["node"], "libos.entrypoint must be the node binary")
    need(loader.get("argv") == ["node", "/opt/bastion/dist/main.js"], "loader.argv must be fixed to node dist/main.js")
    need("insecure__use_cmdline_argv" not in loader, "the host must not pass argv (loader.insecure__use_cmdline_argv)")
    need("insecure__use_host_env" not in loader, "the host must not pass the environment (loader.insecure__use_host_env)")
    need(loader.get("env", {}).get("BASTION_DATA_DIR") == "/data", "BASTION_DATA_DIR must be the encrypted mount /data")
    need(sys_.get("insecure__allow_eventfd") is True, "sys.insecure__allow_eventfd = true (libuv needs eventfd)")
    need(sys_.get("enable_sigterm_injection") is True, "sys.enable_sigterm_injection = true (graceful shutdown)")
    need(sgx.get("remote_attestation") == "dcap", 'sgx.remote_attestation = "dcap"')
    need(sgx.get("debug") is False, "sgx.debug must be false by default")
    threads = sgx.get("max_threads", 0)
    need(threads >= 8 + VALUES["pool_size"] * (1 + VALUES["torch_threads"]), "sgx.max_threads too small for the pool")
    mounts = {m["path"]: m for m in manifest.get("fs", {}).get("mounts", [])}
    data = mounts.get("/data", {})
    need(data.get("type") == "encrypted" and data.get("key_name") in ("_sgx_mrenclave", "_sgx_mrsigner"),
         "/data must be an encrypted mount bound to an enclave key")
    need(mounts.get("/tmp", {}).get("type") == "tmpfs", "/tmp must be a tmpfs")
    trusted = set(sgx.get("trusted_files", []))
    for required in ["file:/usr/bin/node", "file:/opt/bastion/dist/", "file:/opt/bastion/node_modules/",
                     "file:/opt/bastion/build/Release/bastion.node"]:
        need(required in trusted, f"{required} must be a trusted file")
    need(not any("/srv/bastion" in f for f in trusted) and "allowed_files" not in sgx,
         "the data folder must not be trusted or allowed (it is the encrypted mount)")
    if problems:
        for p in problems:
            print(f"manifest check: {p}", file=sys.stderr)
        return 1
    print(f"manifest check: {path} renders and meets every rule")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
