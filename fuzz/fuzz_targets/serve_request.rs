//! Any bytes as the body of an inference request to `recur serve`, as JSON alone and with the binary tensor
//! extension's header at every split the first byte picks, checked against a model over features and one over
//! tokens: a checked request or an error, never a panic, and never an allocation sized by a declared shape.

#![no_main]

use libfuzzer_sys::fuzz_target;
use recur_serve::StepInput;
use recur_serve::protocol::InferRequest;

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else { return };
    let header = (split as usize * body.len()) / 255;
    for header_length in [None, Some(header), Some(body.len() + 1)] {
        let Ok((request, binary)) = InferRequest::from_body(body, header_length) else { continue };
        let input = if split % 2 == 0 { StepInput::Features(3) } else { StepInput::Tokens(50) };
        let _ = request.into_stream_request(input, binary);
    }
});
