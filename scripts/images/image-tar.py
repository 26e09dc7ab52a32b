#!/usr/bin/env python3
"""Docker-archive ("docker save") tarballs without Docker, for scripts/build-images.sh.

  image-tar.py pack LAYER.tar OUT.tar --tag NAME:TAG --env K=V ... [--user U] [--workdir D]
      writes a one-layer image that Jib reads as a base (quarkus.jib.base-jvm-image=tar://OUT.tar)
  image-tar.py unpack ARCHIVE.tar ROOTFS
      applies the image's layers in order under ROOTFS (refuses whiteouts: none of our images has any)
  image-tar.py config ARCHIVE.tar
      prints the image config as JSON (Entrypoint, Cmd, Env, User, WorkingDir, ExposedPorts) and the layer sizes
"""
import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def pack(args):
    diff_id = "sha256:" + sha256_file(args.layer)
    env = args.env or []
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": {"Env": env, "WorkingDir": args.workdir, **({"User": args.user} if args.user else {})},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "scripts/build-images.sh: debootstrap --variant=minbase + jlink"}],
    }
    config_bytes = json.dumps(config, indent=1).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [args.tag], "Layers": ["layer.tar"]}]
    with tarfile.open(args.out, "w") as tar:
        add_bytes(tar, config_name, config_bytes)
        add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
        tar.add(args.layer, arcname="layer.tar")


def read_archive(path):
    tar = tarfile.open(path, "r")
    manifest = json.load(tar.extractfile("manifest.json"))[0]
    config = json.load(tar.extractfile(manifest["Config"]))
    return tar, manifest, config


def unpack(args):
    tar, manifest, _ = read_archive(args.archive)
    os.makedirs(args.rootfs, exist_ok=True)
    for layer in manifest["Layers"]:
        member = tar.getmember(layer)
        data = tar.extractfile(member)
        # GNU tar detects compression itself; --numeric-owner keeps uid/gid as recorded
        listing = subprocess.run(["tar", "-t", "--warning=no-unknown-keyword", "-f", "-"], input=data.read(), capture_output=True, check=True).stdout.decode()
        if any(os.path.basename(p).startswith(".wh.") for p in listing.splitlines()):
            sys.exit(f"{layer}: whiteout entries are not supported by this unpacker")
        data = tar.extractfile(member)
        subprocess.run(["tar", "-x", "-p", "--numeric-owner", "--warning=no-unknown-keyword", "-f", "-", "-C", args.rootfs], input=data.read(), check=True)


def show_config(args):
    tar, manifest, config = read_archive(args.archive)
    c = config.get("config", {})
    out = {k: c.get(k) for k in ("Entrypoint", "Cmd", "Env", "User", "WorkingDir", "ExposedPorts", "Labels")}
    out["layers"] = [{"file": l, "bytes": tar.getmember(l).size} for l in manifest["Layers"]]
    json.dump(out, sys.stdout, indent=1)
    print()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack")
    a.add_argument("layer")
    a.add_argument("out")
    a.add_argument("--tag", required=True)
    a.add_argument("--env", action="append")
    a.add_argument("--user")
    a.add_argument("--workdir", default="/")
    a.set_defaults(func=pack)
    b = sub.add_parser("unpack")
    b.add_argument("archive")
    b.add_argument("rootfs")
    b.set_defaults(func=unpack)
    c = sub.add_parser("config")
    c.add_argument("archive")
    c.set_defaults(func=show_config)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
