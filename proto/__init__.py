"""The .proto files of every gRPC service and the code generated from them."""
