package export

import (
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the "proto" codec
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// encoded is a message the Subscribe handler has already marshaled: it knows
// its size (the byte bound of a batch) and whether it encodes at all (an
// event that does not becomes an in-band Lost record) before the send, and
// the message is marshaled once.
type encoded struct{ b []byte }

// encode marshals m as gRPC's proto codec does (size, then marshal with the
// cached size).
func encode(m proto.Message) (*encoded, error) {
	size := proto.Size(m)
	b, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(make([]byte, 0, size), m)
	if err != nil {
		return nil, err
	}
	return &encoded{b: b}, nil
}

// feedCodec is gRPC's proto codec that sends an *encoded as it is.
type feedCodec struct{ encoding.CodecV2 }

func newFeedCodec() feedCodec { return feedCodec{encoding.GetCodecV2("proto")} }

// Marshal implements encoding.CodecV2.
func (c feedCodec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := v.(*encoded); ok {
		return mem.BufferSlice{mem.SliceBuffer(e.b)}, nil
	}
	return c.CodecV2.Marshal(v)
}
