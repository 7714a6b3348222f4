use callscript_worker::{decode::{DecodeOptions, Decoder, Window}, mel::MelExtractor, source::ModelSource};
use candle_core::{DType, Device, Tensor};
use std::time::Instant;
fn main() {
    let source = ModelSource::resolve("models/whisper-tiny.en").unwrap();
    let loaded = source.load(&Device::Cpu).unwrap();
    let mut decoder = Decoder::from_loaded(&loaded, DType::F32, &Device::Cpu, DecodeOptions::default()).unwrap();
    let bytes = std::fs::read("fixtures/audio/eval/whispercpp_jfk.mp3").unwrap();
    let audio = callscript_worker::audio::decode(&bytes, Some("mp3"), &Default::default()).unwrap();
    let mel = MelExtractor::new(80).compute(&audio.channels[0]).window(0);
    let model = decoder.model();
    let input = Tensor::from_vec(mel.clone(), (1, 80, 3000), &Device::Cpu).unwrap();
    for _ in 0..2 {
        let s = Instant::now();
        let f = model.encode(&input).unwrap();
        println!("encode {:?}", s.elapsed());
        let mut state = model.start(&f, 1).unwrap();
        let s = Instant::now();
        model.step(&mut state, &[50257, 50363], 2).unwrap();
        println!("start+first step {:?}", s.elapsed());
        let s = Instant::now();
        for i in 0..20 { model.step(&mut state, &[400 + i], 1).unwrap(); }
        println!("20 steps {:?}", s.elapsed());
    }
    for _ in 0..2 {
        let s = Instant::now();
        let r = decoder.decode(&[Window { mel: mel.clone(), previous: vec![] }]).unwrap();
        println!("full decode {:?} {} tokens", s.elapsed(), r[0].tokens.len());
    }
}
