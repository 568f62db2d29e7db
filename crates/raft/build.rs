//! Generates the cluster gRPC service (client and server stubs) without
//! protobuf: messages are Rust types serialized by `crate::codec::Postcard`.

fn main() {
    use tonic_build::manual::{Builder, Method, Service};
    let codec = "crate::codec::Postcard";
    let unary = |name: &str, route: &str, input: &str, output: &str| {
        Method::builder()
            .name(name)
            .route_name(route)
            .input_type(input)
            .output_type(output)
            .codec_path(codec)
            .build()
    };
    let service = Service::builder()
        .name("Cluster")
        .package("arca.cluster")
        .method(unary(
            "append_entries",
            "AppendEntries",
            "crate::wire::AppendReq",
            "crate::wire::AppendReply",
        ))
        .method(unary(
            "vote",
            "Vote",
            "crate::wire::VoteReq",
            "crate::wire::VoteReply",
        ))
        .method(
            Method::builder()
                .name("install_snapshot")
                .route_name("InstallSnapshot")
                .input_type("crate::wire::SnapshotChunk")
                .output_type("crate::wire::SnapshotReply")
                .codec_path(codec)
                .client_streaming()
                .build(),
        )
        .method(unary(
            "read_index",
            "ReadIndex",
            "crate::wire::ReadIndexReq",
            "crate::wire::ReadIndexReply",
        ))
        .method(unary(
            "forward",
            "Forward",
            "crate::wire::ForwardReq",
            "crate::wire::ForwardReply",
        ))
        .method(unary(
            "transfer_leader",
            "TransferLeader",
            "crate::wire::TransferReq",
            "crate::wire::TransferReply",
        ))
        .build();
    Builder::new().compile(&[service]);
    println!("cargo:rerun-if-changed=build.rs");
}
