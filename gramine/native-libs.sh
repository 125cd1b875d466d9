#!/bin/sh
# Prints, one a line, the shared libraries that the ELF files given as arguments load (by ldd), at the
# path the enclave's loader opens them: the library's folder is resolved (on a merged-/usr system ldd says
# /lib/x86_64-linux-gnu, which is /usr/lib/x86_64-linux-gnu; inside the enclave /lib is Gramine's glibc), its
# file name is kept (the name the loader looks for, even when it is a symlink such as libblas.so.3 ->
# /etc/alternatives/...: Gramine follows host symlinks and checks the target's content against the hash
# taken under this name). glibc's own libraries are left out: Gramine's patched glibc, in its runtime
# folder mounted on /lib, replaces the host's (the list is that of Gramine's subprojects/packagefiles/
# glibc-2.40/meson.build). A library ldd cannot find, or an argument that is not a file, is an error.
#
#   sh native-libs.sh /usr/bin/node ../build/Release/bastion.node ... > bastion.libs
set -eu

for file in "$@"; do
  if [ ! -f "$file" ]; then
    echo "native-libs: $file does not exist" >&2
    exit 1
  fi
done

found=$(ldd "$@" | awk '
  /^[^\t].*:$/ { file = substr($0, 1, length($0) - 1); next }
  $2 == "=>" && $3 == "not" { printf "native-libs: %s needs %s, which ldd does not find\n", file, $1 > "/dev/stderr"; missing = 1; next }
  $2 == "=>" && $3 ~ /^\// { print $3; next }
  $1 ~ /^\// && $2 ~ /^\(/ { print $1 }
  END { exit missing }')

# Each folder resolved once (realpath per library would start hundreds of processes).
folders=$(printf '%s\n' $found | sed 's|/[^/]*$||' | sort -u)
resolved=$(for folder in $folders; do printf '%s %s\n' "$folder" "$(realpath "$folder")"; done)

printf '%s\n' $found | awk -v resolved="$resolved" '
  BEGIN {
    n = split(resolved, lines, "\n")
    for (i = 1; i <= n; i++) { split(lines[i], pair, " "); real[pair[1]] = pair[2] }
    glibc = "^(ld-linux.*|libc|libm|libmvec|libdl|libpthread|librt|libresolv|libutil|libnsl|libanl|libthread_db|libnss_.*)[.]so[.]"
  }
  {
    name = $0; sub(/.*\//, "", name)
    folder = $0; sub(/\/[^\/]*$/, "", folder)
    if (name !~ glibc) print real[folder] "/" name
  }' | sort -u
