# The Label Backup sidecar: the agent, the official plugins, and the client
# tools the plugins run. A first version: the full image (more engines,
# pg_dump for every PostgreSQL major, an offline build recipe) is tracked
# separately.
#
#   docker build -t label-backup .
#   docker run -d -v /var/run/docker.sock:/var/run/docker.sock:ro \
#     -v ./backups:/backups -p 8080:8080 label-backup

ARG GO_VERSION=1.26
ARG DEBIAN_RELEASE=bookworm

FROM golang:${GO_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
# Module files first, so dependency downloads stay cached between builds.
COPY go.work go.work.sum ./
COPY sdk/go.mod sdk/go.sum sdk/
COPY host/go.mod host/go.sum host/
COPY plugins/local/go.mod plugins/local/go.sum plugins/local/
COPY plugins/mongodb/go.mod plugins/mongodb/go.sum plugins/mongodb/
COPY plugins/mysql/go.mod plugins/mysql/go.sum plugins/mysql/
COPY plugins/postgres/go.mod plugins/postgres/go.sum plugins/postgres/
COPY plugins/redis/go.mod plugins/redis/go.sum plugins/redis/
COPY examples/plugin-skeleton/go.mod examples/plugin-skeleton/go.sum examples/plugin-skeleton/
RUN cd host && go mod download && cd ../plugins/local && go mod download && cd ../mongodb && go mod download && cd ../mysql && go mod download && cd ../postgres && go mod download && cd ../redis && go mod download
COPY . .
ENV CGO_ENABLED=0
RUN mkdir /out \
 && (cd host && go build -trimpath -ldflags=-s -o /out/label-backup ./cmd/label-backup) \
 && for p in local mongodb mysql postgres redis; do \
      (cd plugins/$p && go build -trimpath -ldflags=-s -o /out/label-backup-plugin-$p ./cmd/label-backup-plugin-$p) || exit 1; \
    done

FROM debian:${DEBIAN_RELEASE}-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client mariadb-client ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin labelbackup \
 && mkdir -p /backups && chown labelbackup: /backups && chmod 0700 /backups
COPY --from=build /out/ /usr/lib/label-backup/
ENV PLUGIN_DIR=/usr/lib/label-backup \
    LOCAL_BACKUP_PATH=/backups \
    HTTP_ADDR=:8080
# Reading the Docker socket needs its group: run with
# --group-add $(stat -c %g /var/run/docker.sock), or put a socket proxy in front.
USER labelbackup
EXPOSE 8080
VOLUME ["/backups"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD ["/usr/lib/label-backup/label-backup", "healthcheck"]
ENTRYPOINT ["/usr/lib/label-backup/label-backup"]
CMD ["run"]
