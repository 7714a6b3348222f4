//! Decoded planes → 16 kHz, streamed: every codec path feeds the same [`ChannelSink`], so there is
//! one resampler to trust.

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Indexing, Resampler};

use super::{AudioError, TARGET_SAMPLE_RATE};

/// Frames per resampler call: large enough for an efficient FFT, small enough to keep the
/// not-yet-resampled backlog (and the resampler's delay) tiny.
const RESAMPLER_CHUNK_FRAMES: usize = 1024;

/// Collects decoded planes at 16 kHz, resampling on the fly so the full-rate recording is never
/// held in memory (a 4 h 48 kHz stereo file would be 5.5 GB of `f32`).
pub(super) struct ChannelSink {
    pub(super) source_rate: u32,
    output: Vec<Vec<f32>>,
    resampler: Option<StreamingResampler>,
}

impl ChannelSink {
    pub(super) fn new(
        source_rate: u32,
        channels: usize,
        expected_source_frames: Option<u64>,
    ) -> Result<Self, AudioError> {
        let capacity = expected_source_frames.map_or(0, |frames| {
            (frames as f64 * f64::from(TARGET_SAMPLE_RATE) / f64::from(source_rate.max(1))) as usize
        });
        let resampler = if source_rate == TARGET_SAMPLE_RATE {
            None
        } else {
            Some(StreamingResampler::new(source_rate, channels)?)
        };
        Ok(Self {
            source_rate,
            output: (0..channels)
                .map(|_| Vec::with_capacity(capacity))
                .collect(),
            resampler,
        })
    }

    pub(super) fn channels(&self) -> usize {
        self.output.len()
    }

    pub(super) fn push(&mut self, planes: &[Vec<f32>]) -> Result<(), AudioError> {
        match &mut self.resampler {
            Some(resampler) => resampler.push(planes, &mut self.output),
            None => {
                for (output, plane) in self.output.iter_mut().zip(planes) {
                    output.extend_from_slice(plane);
                }
                Ok(())
            }
        }
    }

    pub(super) fn finish(mut self) -> Result<Vec<Vec<f32>>, AudioError> {
        if let Some(resampler) = &mut self.resampler {
            resampler.finish(&mut self.output)?;
        }
        Ok(self.output)
    }
}

/// rubato's FFT resampler fed incrementally: input accumulates until a full chunk is there, the
/// resampler's start-up delay is dropped so output sample 0 lines up with input sample 0, and
/// the tail is flushed so the output is exactly `ceil(frames × 16000 / rate)` long.
struct StreamingResampler {
    source_rate: u32,
    resampler: Fft<f32>,
    pending: Vec<Vec<f32>>,
    chunk_output: Vec<Vec<f32>>,
    source_frames: u64,
    delay_frames_left: usize,
}

impl StreamingResampler {
    fn new(source_rate: u32, channels: usize) -> Result<Self, AudioError> {
        let resampler = Fft::<f32>::new(
            source_rate as usize,
            TARGET_SAMPLE_RATE as usize,
            RESAMPLER_CHUNK_FRAMES,
            channels,
            FixedSync::Input,
        )
        .map_err(|error| AudioError::UnsupportedCodec {
            reason: format!("cannot resample {channels} channels at {source_rate} Hz: {error}"),
        })?;
        let chunk_output_frames = resampler.output_frames_max();
        Ok(Self {
            source_rate,
            delay_frames_left: resampler.output_delay(),
            resampler,
            pending: vec![Vec::new(); channels],
            chunk_output: vec![vec![0.0; chunk_output_frames]; channels],
            source_frames: 0,
        })
    }

    fn push(&mut self, planes: &[Vec<f32>], output: &mut [Vec<f32>]) -> Result<(), AudioError> {
        for (pending, plane) in self.pending.iter_mut().zip(planes) {
            pending.extend_from_slice(plane);
        }
        self.source_frames += planes.first().map_or(0, Vec::len) as u64;

        let mut consumed = 0;
        while self.pending_frames() - consumed >= self.resampler.input_frames_next() {
            let (frames_in, frames_out) =
                self.process_chunk(Indexing::new().input_offset(consumed))?;
            consumed += frames_in;
            self.emit(frames_out, output);
        }
        for pending in &mut self.pending {
            pending.drain(..consumed);
        }
        Ok(())
    }

    fn finish(&mut self, output: &mut [Vec<f32>]) -> Result<(), AudioError> {
        let expected_frames = (self.source_frames as f64 * f64::from(TARGET_SAMPLE_RATE)
            / f64::from(self.source_rate))
        .ceil() as usize;
        let remaining = self.pending_frames();
        if remaining > 0 {
            let (_, frames_out) = self.process_chunk(Indexing::new().partial_len(remaining))?;
            self.emit(frames_out, output);
            for pending in &mut self.pending {
                pending.clear();
            }
        }
        // The last input frames are still inside the resampler's delay line: pump silence
        // through until they have come out.
        while output.first().map_or(0, Vec::len) < expected_frames {
            let (_, frames_out) = self.process_chunk(Indexing::new().partial_len(0))?;
            if frames_out == 0 {
                break;
            }
            self.emit(frames_out, output);
        }
        for channel in output.iter_mut() {
            channel.truncate(expected_frames);
        }
        Ok(())
    }

    fn pending_frames(&self) -> usize {
        self.pending.first().map_or(0, Vec::len)
    }

    fn process_chunk(&mut self, indexing: Indexing) -> Result<(usize, usize), AudioError> {
        let channels = self.pending.len();
        let resample_error = |reason: String| AudioError::Corrupt {
            position_seconds: None,
            reason: format!("resampling failed: {reason}"),
        };
        let input = SequentialSliceOfVecs::new(&self.pending, channels, self.pending_frames())
            .map_err(|error| resample_error(error.to_string()))?;
        let output_frames = self.chunk_output.first().map_or(0, Vec::len);
        let mut output =
            SequentialSliceOfVecs::new_mut(&mut self.chunk_output, channels, output_frames)
                .map_err(|error| resample_error(error.to_string()))?;
        self.resampler
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|error| resample_error(error.to_string()))
    }

    fn emit(&mut self, frames_out: usize, output: &mut [Vec<f32>]) {
        let skip = self.delay_frames_left.min(frames_out);
        self.delay_frames_left -= skip;
        for (output, chunk) in output.iter_mut().zip(&self.chunk_output) {
            output.extend_from_slice(&chunk[skip..frames_out]);
        }
    }
}
