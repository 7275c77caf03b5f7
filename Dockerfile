# The Label Backup sidecar: the agent, the official plugins, and the client
# tools the plugins run (pg_dump/pg_restore, mariadb-dump). See docs/IMAGE.md.
#
# With access to Docker Hub, the agent and plugins are compiled in a golang
# stage (the last stage, "runtime", is the default target):
#
#   docker build -t label-backup .
#
# Without a registry (or to reuse binaries built on the host), build the
# binaries first and take the "runtime-prebuilt" target; scripts/image.sh
# does all of this, including a debian:bookworm-slim made with debootstrap:
#
#   make build BIN=$PWD/prebuilt
#   DOCKER_BUILDKIT=0 docker build --network host --target runtime-prebuilt \
#     -t label-backup .
#
# Run it with the Docker socket, its group and a backup directory:
#
#   docker run -d --name label-backup \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v /srv/backups:/backups -p 8080:8080 label-backup
#
# Stage order matters for the classic builder (DOCKER_BUILDKIT=0): it builds
# every stage up to the target, so the stages that need no golang image come
# first.

ARG GO_VERSION=1.26
ARG DEBIAN_RELEASE=bookworm
# The image of the "build" stage; scripts/image.sh --golang-stage sets a
# stand-in made from the host's Go toolchain to test this path offline.
ARG GOLANG_IMAGE=golang:${GO_VERSION}-${DEBIAN_RELEASE}

# ---- runtime-base: Debian slim, client tools, user, settings (no binaries)
FROM debian:${DEBIAN_RELEASE}-slim AS runtime-base
# postgresql-client: pg_dump/pg_restore/psql 15 on bookworm (they dump older
# servers too; newer servers need PGDG's client, see docs/IMAGE.md).
# mariadb-client: mariadb-dump (mysqldump) and mariadb.
# ca-certificates for HTTPS (S3, webhooks); tzdata for TZ and CRON_TZ=.
# No gnupg: the agent does OpenPGP and age itself.
# The MariaDB client package ships a dozen ~5 MB tools no plugin runs; dpkg
# skips them (about 55 MB). Kept: mariadb/mysql, mariadb-dump/mysqldump,
# mariadb-admin/mysqladmin, mariadb-check.
RUN printf 'path-exclude /usr/bin/%s\n' \
      replace resolve_stack_dump perror mariadb-waitpid mysql_waitpid mariadb-tzinfo-to-sql mysql_tzinfo_to_sql \
      mariadb-plugin mysql_plugin mariadb-conv mariadb-show mysqlshow mariadb-import mysqlimport \
      mariadb-slap mysqlslap mariadb-binlog mysqlbinlog innotop mytop \
      >/etc/dpkg/dpkg.cfg.d/label-backup-slim \
 && export DEBIAN_FRONTEND=noninteractive \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client mariadb-client ca-certificates tzdata \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* /var/log/dpkg.log \
 && groupadd --gid 10001 labelbackup \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin labelbackup \
 && mkdir -p /backups /usr/lib/label-backup \
 && chown labelbackup:labelbackup /backups && chmod 0700 /backups
ENV PLUGIN_DIR=/usr/lib/label-backup \
    LOCAL_BACKUP_PATH=/backups \
    HTTP_ADDR=:8080 \
    PATH=/usr/lib/label-backup:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Reading the Docker socket needs its group: run with
# --group-add $(stat -c %g /var/run/docker.sock), or put a socket proxy in front.
USER 10001:10001
EXPOSE 8080
VOLUME ["/backups"]
# `label-backup healthcheck` asks the running agent's /healthz at HTTP_ADDR
# (the image has no curl).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/usr/lib/label-backup/label-backup", "healthcheck"]
ENTRYPOINT ["/usr/lib/label-backup/label-backup"]
CMD ["run"]
LABEL org.opencontainers.image.title="label-backup" \
      org.opencontainers.image.description="Docker-label-driven database backup agent" \
      lb.image="label-backup"

# ---- runtime-prebuilt: binaries built outside Docker (make build BIN=...)
FROM runtime-base AS runtime-prebuilt
# A directory in the build context holding label-backup and
# label-backup-plugin-<name> (static: CGO_ENABLED=0, for the image's
# architecture). Not bin/: .dockerignore leaves that out of the context.
ARG PREBUILT_DIR=prebuilt
# The classic builder (DOCKER_BUILDKIT=0) builds this stage even for the
# default target, where there may be no prebuilt binaries: the wildcard may
# match nothing, and the Dockerfile (always in the context) keeps the COPY
# from failing then; it is removed right after. The classic builder lacks
# COPY --chmod: go build already makes the binaries 0755.
USER 0
COPY --chown=0:0 Dockerfile ${PREBUILT_DIR}/label-backup* /usr/lib/label-backup/
RUN rm /usr/lib/label-backup/Dockerfile
USER 10001:10001

# ---- build: compile the agent and every plugin in a golang image
FROM ${GOLANG_IMAGE} AS build
WORKDIR /src
# Every module builds on its own (GOWORK=off; each go.mod replaces the SDK
# with ../sdk), so the image does not depend on what go.work lists.
ENV CGO_ENABLED=0 GOWORK=off
# Module files first, so dependency downloads stay cached between builds.
COPY sdk/go.mod sdk/go.sum sdk/
COPY host/go.mod host/go.sum host/
COPY plugins/local/go.mod plugins/local/go.sum plugins/local/
COPY plugins/mongodb/go.mod plugins/mongodb/go.sum plugins/mongodb/
COPY plugins/mysql/go.mod plugins/mysql/go.sum plugins/mysql/
COPY plugins/postgres/go.mod plugins/postgres/go.sum plugins/postgres/
COPY plugins/redis/go.mod plugins/redis/go.sum plugins/redis/
COPY plugins/s3/go.mod plugins/s3/go.sum plugins/s3/
RUN for m in host plugins/*/; do (cd "$m" && go mod download) || exit 1; done
COPY . .
# Every plugins/<name>/cmd/label-backup-plugin-<name>, so a new official
# plugin needs no change here (its modules download here if not listed above).
RUN mkdir /out \
 && (cd host && go build -trimpath -ldflags=-s -o /out/label-backup ./cmd/label-backup) \
 && for c in plugins/*/cmd/label-backup-plugin-*; do \
      p=${c##*/}; (cd "${c%/cmd/*}" && go build -trimpath -ldflags=-s -o "/out/$p" "./cmd/$p") || exit 1; \
    done

# ---- runtime (default): the golang-built binaries
FROM runtime-base AS runtime
COPY --from=build /out/ /usr/lib/label-backup/
