//! An upstream's stream, as the relay reads it: bytes split into reads of
//! any size, parsed as Server-Sent Events under a line limit, each event
//! classified for the retry decision and its usage read (pass-through), and
//! translated to every client API (re-framed as SSE or as a Gemini array).
//!
//! The first byte picks the upstream protocol and the client API, the
//! second the read size; the rest is the stream. Besides "no panic": the
//! parser yields the same events however the bytes are split, and what the
//! translator writes is well-formed for the client (SSE events whose data is
//! JSON or `[DONE]`, or one JSON array).

#![no_main]

use libfuzzer_sys::fuzz_target;
use llmpool_proxy::pipeline::ClientApi;
use llmpool_proxy::protocol::sse::{Event, Parser};
use llmpool_proxy::protocol::stream::{self, Decoder, GeminiFraming, Translator};
use llmpool_proxy::protocol::{Protocol, Wire};

const MAX_LINE: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let [which, split, bytes @ ..] = data else {
        return;
    };
    let read = usize::from(*split % 64) + 1;
    let mut events = Vec::new();
    let mut parser = Parser::new(MAX_LINE);
    for chunk in bytes.chunks(read) {
        parser.feed(chunk, &mut events);
        if parser.overflowed() {
            return;
        }
    }
    let mut whole = Vec::new();
    Parser::new(MAX_LINE).feed(bytes, &mut whole);
    assert_eq!(events, whole, "events depend on how the bytes were split");

    let (upstream, wire) = match which % 4 {
        0 => (Protocol::OpenAi, Wire::Chat),
        1 => (Protocol::OpenAi, Wire::Responses),
        2 => (Protocol::Anthropic, Wire::Messages),
        _ => (Protocol::Gemini, Wire::Generate),
    };
    let mut usage = None;
    for event in &events {
        let _ = stream::classify(wire, event);
        stream::read_usage(wire, event, &mut usage);
        let _ = stream::is_done(wire, event);
    }
    if wire == Wire::Responses {
        return; // accounts never stream the Responses API to the gateway
    }

    let api = match (which >> 2) % 5 {
        0 => ClientApi::Chat {
            include_usage: which & 0x80 != 0,
        },
        1 => ClientApi::Responses,
        2 => ClientApi::Messages,
        3 => ClientApi::Gemini {
            framing: GeminiFraming::Sse,
        },
        _ => ClientApi::Gemini {
            framing: GeminiFraming::Array,
        },
    };
    let mut translator = Translator::new(Decoder::new(upstream), api.encoder());
    let mut out = Vec::new();
    for event in &events {
        if translator.feed(event, &mut out).is_err() {
            check_framing(api, &out, false);
            return;
        }
    }
    translator.end(&mut out);
    check_framing(api, &out, true);
});

/// What the client receives parses in its framing.
fn check_framing(api: ClientApi, out: &[u8], ended: bool) {
    if matches!(
        api,
        ClientApi::Gemini {
            framing: GeminiFraming::Array
        }
    ) {
        if ended {
            let v: serde_json::Value = serde_json::from_slice(out).expect("a JSON array");
            assert!(v.is_array());
        }
        return;
    }
    let mut events: Vec<Event> = Vec::new();
    let mut parser = Parser::new(usize::MAX);
    parser.feed(out, &mut events);
    assert!(parser.at_boundary(), "output ends inside an event");
    for e in events {
        if e.data != "[DONE]" {
            assert!(
                serde_json::from_str::<serde_json::Value>(&e.data).is_ok(),
                "event data is not JSON: {:?}",
                e.data
            );
        }
    }
}
