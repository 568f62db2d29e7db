//! A tonic codec that carries serde types as postcard bytes, so the cluster
//! protocol needs no `.proto` files or `protoc`. Both ends are Arca of the
//! same version; the messages live in [`crate::wire`].

use std::marker::PhantomData;

use bytes::{Buf, BufMut};
use serde::{de::DeserializeOwned, Serialize};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

pub struct Postcard<E, D>(PhantomData<(E, D)>);

impl<E, D> Default for Postcard<E, D> {
    fn default() -> Self {
        Postcard(PhantomData)
    }
}

pub struct Enc<E>(PhantomData<E>);
pub struct Dec<D>(PhantomData<D>);

impl<E, D> Codec for Postcard<E, D>
where
    E: Serialize + Send + 'static,
    D: DeserializeOwned + Send + 'static,
{
    type Encode = E;
    type Decode = D;
    type Encoder = Enc<E>;
    type Decoder = Dec<D>;

    fn encoder(&mut self) -> Self::Encoder {
        Enc(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        Dec(PhantomData)
    }
}

impl<E: Serialize> Encoder for Enc<E> {
    type Item = E;
    type Error = Status;

    fn encode(&mut self, item: E, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        postcard::to_io(&item, dst.writer())
            .map(|_| ())
            .map_err(|e| Status::internal(format!("cannot encode cluster message: {e}")))
    }
}

impl<D: DeserializeOwned> Decoder for Dec<D> {
    type Item = D;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<D>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        postcard::from_bytes(&bytes)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("cannot decode cluster message: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_message_through_postcard() {
        #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
        struct M {
            a: u64,
            #[serde(with = "serde_bytes")]
            b: Vec<u8>,
            s: String,
        }
        let m = M {
            a: 7,
            b: vec![0, 255, 1],
            s: "ü /x".into(),
        };
        let bytes = postcard::to_allocvec(&m).unwrap();
        let back: M = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(m, back);
    }
}
