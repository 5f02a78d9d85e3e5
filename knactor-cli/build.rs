//! Generates the gRPC service of `knactor bench propagation`'s API-centric baseline from its
//! description in Rust (no protoc, no .proto file): `Shipping.Ship`, a unary call.

fn main() {
    let ship = tonic_build::manual::Method::builder()
        .name("ship")
        .route_name("Ship")
        .input_type("crate::bench::grpc::ShipRequest")
        .output_type("crate::bench::grpc::ShipReply")
        .codec_path("tonic_prost::ProstCodec")
        .build();
    let service = tonic_build::manual::Service::builder()
        .name("Shipping")
        .package("knactor.bench")
        .method(ship)
        .build();
    tonic_build::manual::Builder::new().compile(&[service]);
}
