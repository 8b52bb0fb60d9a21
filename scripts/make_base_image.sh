#!/usr/bin/env bash
# Make the Dockerfile's base image locally, for machines that cannot pull one: debootstrap a
# minimal Debian trixie, trim it the way the official -slim images are trimmed, and import it.
#
#   sudo scripts/make_base_image.sh [IMAGE]     (default IMAGE: debian:trixie-slim)
#
# Needs root and debootstrap. The mirror is debootstrap's default unless DEBIAN_MIRROR is set.
# Uses docker, podman or buildah, like build_docker.sh (ENGINE=... to choose).
set -euo pipefail

image=${1:-debian:trixie-slim}
suite=trixie

die() {
  echo "make_base_image: error: $*" >&2
  exit 2
}

((EUID == 0)) || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"

engine=${ENGINE:-}
if [[ -z $engine ]]; then
  for candidate in docker podman buildah; do
    if command -v "$candidate" >/dev/null && { [[ $candidate == buildah ]] || "$candidate" info >/dev/null 2>&1; }; then
      engine=$candidate
      break
    fi
  done
fi
[[ -n $engine ]] || die "no container engine: install docker, podman or buildah"
if [[ $engine == buildah ]]; then
  export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs} BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
fi

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
rootfs=$workdir/rootfs

echo "make_base_image: debootstrap --variant=minbase $suite" >&2
debootstrap --variant=minbase "$suite" "$rootfs" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} >"$workdir/debootstrap.log" 2>&1 || {
  tail -n 20 "$workdir/debootstrap.log" >&2
  die "debootstrap failed"
}

# What the official slim images do: no documentation, manuals or translations, now or after
# later apt installs; no apt caches.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
SLIM
find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
rm -rf "$rootfs"/usr/share/{man,groff,info,lintian}/* "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
# The image gets the host's resolver at run time; never bake in this machine's.
: >"$rootfs/etc/resolv.conf"

tar -C "$rootfs" --numeric-owner -cf "$workdir/rootfs.tar" .
case "$engine" in
  docker | podman)
    "$engine" import --change 'CMD ["bash"]' "$workdir/rootfs.tar" "$image" >/dev/null
    ;;
  buildah)
    container=$(buildah from scratch)
    buildah add --quiet "$container" "$workdir/rootfs.tar" /
    buildah config --cmd bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$container"
    buildah commit --quiet --rm "$container" "$image" >/dev/null
    ;;
esac
echo "make_base_image: $image ($("$engine" images --format '{{.Size}}' "$image" | head -n 1))" >&2
