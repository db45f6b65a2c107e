//! Compiles the Store API protobufs with a pure-Rust compiler, so no system
//! `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const FILES: [&str; 10] = [
        "proto/thanos/labels.proto",
        "proto/thanos/types.proto",
        "proto/thanos/rpc.proto",
        "proto/thanos/info.proto",
        "proto/thanos/metadata.proto",
        "proto/thanos/targets.proto",
        "proto/thanos/rules.proto",
        "proto/thanos/exemplars.proto",
        "proto/prometheus/types.proto",
        "proto/prometheus/remote.proto",
    ];
    for file in FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(FILES, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".thanos.Chunk.data")
        .bytes(".prometheus.Chunk.data")
        .compile_fds(descriptors)?;
    Ok(())
}
