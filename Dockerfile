# cairn's container image. Without a Docker engine, `make image` builds the
# same image (deploy/image: the same files, modes and entrypoint) as a
# tarball for `docker load` or `ctr images import`.
#
#   docker build -t ghcr.io/cairn-backup/cairn:$(bin/cairn version --json | jq -r .version) .
#
# VERSION, when given, overrides the version compiled into the binary.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w ${VERSION:+-X main.version=${VERSION}}" \
      -o /out/usr/local/bin/cairn ./cmd/cairn \
 && mkdir -p /out/etc/ssl/certs /out/tmp \
 && chmod 1777 /out/tmp \
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ \
 && cp deploy/image/rootfs/etc/passwd deploy/image/rootfs/etc/group /out/etc/ \
 && /out/usr/local/bin/cairn version

# Nothing but the static binary, CA certificates, passwd/group and /tmp.
FROM scratch
COPY --from=build /out/ /
ENV PATH=/usr/local/bin
# Root: the node agent reads and restores every pod's files with their
# owners. Pods that need less set securityContext.runAsUser.
USER 0:0
LABEL org.opencontainers.image.title=cairn \
      org.opencontainers.image.source=https://github.com/cairn-backup/cairn
ENTRYPOINT ["/usr/local/bin/cairn"]
