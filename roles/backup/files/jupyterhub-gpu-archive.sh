#!/bin/sh
# Back up or restore this host's hub: everything users and the deploy made, in one archive.
#   jupyterhub-gpu-archive backup  INSTALL_DIR PROJECT ARCHIVE SOURCE
#   jupyterhub-gpu-archive restore INSTALL_DIR PROJECT ARCHIVE HUB_IMAGE
# The work is done by archive.py (beside this script) in throwaway containers of the hub's image, with no
# network: each user's home volume packed by a container that mounts that volume alone, read-only (a person may
# swap files for links in their own home while it is packed: there is nothing else there for a link to reach), and
# the rest by one that mounts the hub's volume and the deploy's state directories, and no home.
# Written by the jupyterhub-gpu deploy.
set -eu
command=$1 install_dir=$2 project=$3 archive=$4 extra=$5
tool=$(dirname "$0")/archive.py
directory=$(dirname "$archive")
name=$(basename "$archive")
hub_volume="$project-hub-data"
user_prefix="$project-user-"
# The shared folders' volumes (shared_folders), backed up and restored as the homes are.
shared_prefix="$project-shared-"

run() {
  image=$1
  shift
  docker run --rm --network none --user 0 --entrypoint python3 \
    -v "$tool:/backup-tool/archive.py:ro" -v "$directory:/backup/archives" \
    -v "$hub_volume:/backup/hub-data" -v "$install_dir:/backup/install" \
    $letsencrypt $volume_mounts "$image" /backup-tool/archive.py "$@"
}

mkdir -p "$directory"
letsencrypt=""
volume_mounts=""
case "$command" in
backup)
  # The image the hub runs, whatever this checkout would build now.
  image=$(docker inspect --format '{{.Config.Image}}' jupyterhub)
  [ -d /etc/letsencrypt ] && letsencrypt="-v /etc/letsencrypt:/backup/letsencrypt:ro"
  work=$(mktemp -d "$directory/.backup-XXXXXXXXXX")
  trap 'rm -rf "$work"' EXIT
  mkdir "$work/volumes"
  # Docker's volume names are [a-zA-Z0-9][a-zA-Z0-9_.-]*: nothing in them the shell would split or expand.
  for volume in $(docker volume ls -q); do
    case "$volume" in "$user_prefix"*|"$shared_prefix"*) ;; *) continue ;; esac
    # Its own empty directory to write into: another home's archive is never where this container can read it. Root
    # with one capability, reading whatever mode a person gave their files, and nothing else.
    mkdir "$work/pack"
    docker run --rm --network none --user 0 --cap-drop ALL --cap-add DAC_READ_SEARCH \
      --security-opt no-new-privileges --entrypoint python3 -v "$tool:/backup-tool/archive.py:ro" \
      -v "$volume:/backup/home:ro" -v "$work/pack:/backup/out" "$image" /backup-tool/archive.py pack /backup/home \
      /backup/out/home.tar.gz
    mv "$work/pack/home.tar.gz" "$work/volumes/$volume.tar.gz"
    rmdir "$work/pack"
  done
  run "$image" backup "/backup/archives/$name" "$extra" "$image" "$project" "/backup/archives/$(basename "$work")"
  ;;
restore)
  image=$extra
  # Compose's own labels: the restored volume is the project's, as if Compose had made it.
  docker volume inspect "$hub_volume" >/dev/null 2>&1 || docker volume create \
    --label "com.docker.compose.project=$project" --label com.docker.compose.volume=hub-data "$hub_volume" >/dev/null
  for volume in $(run "$image" volumes "/backup/archives/$name"); do
    case "$volume" in "$user_prefix"*|"$shared_prefix"*) ;; *) echo "archive holds volume $volume, not of project $project" >&2; exit 2 ;; esac
    docker volume create "$volume" >/dev/null
    volume_mounts="$volume_mounts -v $volume:/backup/volumes/$volume"
  done
  mkdir -p /etc/letsencrypt
  letsencrypt="-v /etc/letsencrypt:/backup/letsencrypt"
  work="/backup/archives/.restore-$name"
  run "$image" unpack "/backup/archives/$name" "$work"
  # Nothing may write what is being replaced: the hub and every user server of this project stop first.
  docker stop jupyterhub >/dev/null 2>&1 || true
  servers=$(docker ps -aq --filter "label=gpudockerspawner.pool=$project")
  [ -z "$servers" ] || docker rm -f $servers >/dev/null
  run "$image" apply "/backup/archives/$name" "$work"
  ;;
*)
  echo "usage: $0 backup|restore INSTALL_DIR PROJECT ARCHIVE SOURCE|HUB_IMAGE" >&2
  exit 2
  ;;
esac
