//! A tour of the Dynamo-compatible request plane framing over a real loopback socket: a caller
//! sends request frames (each carrying a two-part frame with a control message), a worker
//! decodes them with dynrt-core's pull decoders and answers each with an ack.
//!
//! `cargo run --release -p dynrt-tokio --example wire_tour`

use std::collections::BTreeMap;
use std::error::Error;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use dynrt_core::wire::OutBuf;
use dynrt_core::wire::dynamo::{
    AckDecoder, AckFrame, Checksum, DEFAULT_MAX_MESSAGE_SIZE, PayloadCodec, RequestControlMessage,
    RequestDecoder, RequestFrame, RequestType, ResponseType, StreamType, TcpStreamConnectionInfo,
    TwoPartDecoder, TwoPartFrame, control,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REQUESTS: usize = 10_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let worker = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut requests = RequestDecoder::new(DEFAULT_MAX_MESSAGE_SIZE);
        let mut rx = BytesMut::with_capacity(64 * 1024);
        let mut tx = BytesMut::new();
        let mut seen = 0;
        while seen < REQUESTS {
            if socket.read_buf(&mut rx).await? == 0 {
                break;
            }
            while let Some(frame) = requests.decode(&mut rx)? {
                let mut payload = BytesMut::from(&frame.payload()[..]);
                let envelope = TwoPartDecoder::new(DEFAULT_MAX_MESSAGE_SIZE)
                    .decode(&mut payload)?
                    .ok_or("request payload is not a whole two-part frame")?;
                let control: RequestControlMessage =
                    control::from_json("request control message", &envelope.header)?;
                let ack = if control.payload_codec == PayloadCodec::Json {
                    AckFrame::accepted()
                } else {
                    AckFrame::rejected("unexpected codec")
                };
                ack.encode(&mut tx)?;
                seen += 1;
            }
            socket.write_all(&tx).await?;
            tx.clear();
        }
        Ok::<usize, Box<dyn Error + Send + Sync>>(seen)
    });

    let mut socket = TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    let started = Instant::now();
    let mut out = OutBuf::new();
    for i in 0..REQUESTS {
        let id = format!("req-{i}");
        let control = RequestControlMessage {
            id: id.clone(),
            request_type: RequestType::SingleIn,
            response_type: ResponseType::ManyOut,
            payload_codec: PayloadCodec::Json,
            connection_info: TcpStreamConnectionInfo {
                address: "127.0.0.1:1".into(),
                subject: id.clone(),
                context: id.clone(),
                stream_type: StreamType::Response,
            }
            .to_connection_info(),
            metadata: BTreeMap::new(),
            frontend_send_ts_ns: None,
            request_stream_connection_info: None,
        };
        let header = control::to_json("request control message", &control)?;
        let mut envelope = OutBuf::new();
        TwoPartFrame::new(header, Bytes::from_static(br#"{"prompt":"hello"}"#))
            .encode(Checksum::Xxh3, &mut envelope);
        let headers = BTreeMap::from([("request-id".to_string(), id)]);
        RequestFrame::new(
            "1/demo/backend/generate",
            &headers,
            envelope.take_contiguous(),
        )?
        .encode(&mut out);
    }
    let bytes_sent = out.len();
    socket.write_all(&out.take_contiguous()).await?;

    let mut acks = AckDecoder::new(DEFAULT_MAX_MESSAGE_SIZE);
    let mut rx = BytesMut::new();
    let (mut accepted, mut rejected) = (0, 0);
    while accepted + rejected < REQUESTS {
        if socket.read_buf(&mut rx).await? == 0 {
            return Err("worker closed the connection early".into());
        }
        while let Some(ack) = acks.decode(&mut rx)? {
            if ack.is_accepted() {
                accepted += 1
            } else {
                rejected += 1
            }
        }
    }
    let seen = worker.await?.map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    println!("sent {REQUESTS} Dynamo request frames ({bytes_sent} bytes) over {addr}");
    println!("worker decoded {seen}; acks: {accepted} accepted, {rejected} rejected");
    println!(
        "{:.1} ms in all, {:.0} requests/s",
        elapsed.as_secs_f64() * 1e3,
        REQUESTS as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
