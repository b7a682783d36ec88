# syntax=docker/dockerfile:1.7
# One build, three images: `--target proxy`, `--target operator` and
# `--target mock-provider` (the demo's offline provider). The binaries are
# glibc builds for x86_64-unknown-linux-gnu, the target scripts/test.sh
# builds too, run on distroless cc (glibc, CA certificates, no shell) as an
# unprivileged user.

FROM docker.io/library/rust:1.95.0-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-gnu \
      -p llmpool-proxy -p llmpool-operator -p llmpool-e2e --bins \
 && mkdir -p /out \
 && cp target/x86_64-unknown-linux-gnu/release/llmpool-proxy \
       target/x86_64-unknown-linux-gnu/release/llmpool-operator \
       target/x86_64-unknown-linux-gnu/release/mock-provider /out/

FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f AS proxy
COPY --from=build /out/llmpool-proxy /usr/local/bin/llmpool-proxy
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/llmpool-proxy"]

FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f AS operator
COPY --from=build /out/llmpool-operator /usr/local/bin/llmpool-operator
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/llmpool-operator"]

FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f AS mock-provider
COPY --from=build /out/mock-provider /usr/local/bin/mock-provider
USER 65532:65532
EXPOSE 9901
ENTRYPOINT ["/usr/local/bin/mock-provider"]
