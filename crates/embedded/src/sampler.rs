//! Choosing the next token from logits: repetition penalty, temperature, top-p, and a seeded
//! random source so the same seed gives the same text. An optional filter (the JSON-schema
//! constraint) rules tokens out; sampling is then exact over the tokens it allows.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Sampling settings of one generation.
#[derive(Debug, Clone)]
pub struct SamplerSettings {
    pub temperature: f32,
    pub top_p: f32,
    pub repetition_penalty: f32,
    /// How many recent tokens the penalty looks back on.
    pub penalty_window: usize,
    pub seed: u64,
}

impl SamplerSettings {
    /// The likeliest token every time, as it is: no temperature, nucleus or penalty.
    pub fn greedy() -> SamplerSettings {
        SamplerSettings {
            temperature: 0.0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            penalty_window: 0,
            seed: 0,
        }
    }
}

/// Picks tokens for one generation.
pub struct Sampler {
    settings: SamplerSettings,
    rng: StdRng,
}

impl Sampler {
    pub fn new(settings: SamplerSettings) -> Sampler {
        Sampler {
            rng: StdRng::seed_from_u64(settings.seed),
            settings,
        }
    }

    /// The next token given the logits and the tokens so far. `allowed` may rule tokens out;
    /// if it rules out every one, `None`.
    pub fn sample(
        &mut self,
        logits: &mut [f32],
        recent: &[u32],
        allowed: &mut dyn FnMut(u32) -> bool,
    ) -> Option<u32> {
        let s = &self.settings;
        if s.repetition_penalty != 1.0 {
            let window = &recent[recent.len().saturating_sub(s.penalty_window)..];
            let mut seen = std::collections::HashSet::new();
            for &t in window {
                if let Some(l) = logits.get_mut(t as usize)
                    && seen.insert(t)
                {
                    *l = if *l > 0.0 {
                        *l / s.repetition_penalty
                    } else {
                        *l * s.repetition_penalty
                    };
                }
            }
        }
        // Tokens more than `SPREAD` below the best (a relative weight under e^-16 at
        // temperature 1) are left out of the nucleus; they are only tried when the filter
        // rules out every likelier one.
        const SPREAD: f32 = 16.0;
        const CANDIDATES: usize = 256;
        let temperature = s.temperature.max(0.0);
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l));
        let floor = max - SPREAD * temperature.max(0.05);
        let mut likely: Vec<u32> = (0..logits.len() as u32)
            .filter(|&t| logits[t as usize] >= floor)
            .collect();
        let by_logit = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]);
        // Only the likeliest few hundred need sorting: the nucleus lies among them.
        if likely.len() > CANDIDATES {
            likely.select_nth_unstable_by(CANDIDATES, by_logit);
            likely.truncate(CANDIDATES);
        }
        likely.sort_unstable_by(by_logit);
        if temperature == 0.0 {
            return match likely.iter().copied().find(|&t| allowed(t)) {
                Some(t) => Some(t),
                None => unlikely(logits, &likely, allowed),
            };
        }
        let weight = |t: u32| ((logits[t as usize] - max) / temperature).exp();
        let kept: Vec<(u32, f32)> = likely
            .iter()
            .copied()
            .filter(|&t| allowed(t))
            .map(|t| (t, weight(t)))
            .collect();
        if kept.is_empty() {
            return unlikely(logits, &likely, allowed);
        }
        // The nucleus: the fewest likeliest allowed tokens holding `top_p` of the allowed mass.
        let total: f32 = kept.iter().map(|&(_, w)| w).sum();
        let mut mass = 0.0;
        let mut cut = kept.len();
        for (i, &(_, w)) in kept.iter().enumerate() {
            mass += w;
            if mass >= s.top_p * total {
                cut = i + 1;
                break;
            }
        }
        let kept = &kept[..cut];
        let mut pick = self.rng.random::<f32>() * kept.iter().map(|&(_, w)| w).sum::<f32>();
        for &(t, w) in kept {
            if pick < w {
                return Some(t);
            }
            pick -= w;
        }
        kept.last().map(|&(t, _)| t)
    }
}

/// The likeliest allowed token outside the candidates (which the filter ruled out).
fn unlikely(logits: &[f32], tried: &[u32], allowed: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
    let tried: std::collections::HashSet<u32> = tried.iter().copied().collect();
    let mut rest: Vec<u32> = (0..logits.len() as u32)
        .filter(|t| !tried.contains(t))
        .collect();
    rest.sort_unstable_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
    rest.into_iter().find(|&t| allowed(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(temperature: f32, seed: u64) -> SamplerSettings {
        SamplerSettings {
            temperature,
            top_p: 0.9,
            repetition_penalty: 1.0,
            penalty_window: 64,
            seed,
        }
    }

    #[test]
    fn same_seed_same_choices_and_filters_are_obeyed() {
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let run = |seed| {
            let mut sampler = Sampler::new(settings(1.0, seed));
            (0..40)
                .map(|_| {
                    sampler
                        .sample(&mut logits.clone(), &[], &mut |t| t % 2 == 0)
                        .unwrap()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        assert!(run(7).iter().all(|t| t % 2 == 0));
        let mut sampler = Sampler::new(settings(1.0, 1));
        assert_eq!(
            sampler.sample(&mut logits.clone(), &[], &mut |_| false),
            None
        );
    }

    #[test]
    fn zero_temperature_is_greedy_and_penalty_demotes_repeats() {
        let mut logits = vec![0.0, 3.0, 2.9, 1.0];
        let mut sampler = Sampler::new(settings(0.0, 1));
        assert_eq!(
            sampler.sample(&mut logits.clone(), &[], &mut |_| true),
            Some(1)
        );
        let mut penalised = Sampler::new(SamplerSettings {
            repetition_penalty: 1.3,
            ..settings(0.0, 1)
        });
        assert_eq!(
            penalised.sample(&mut logits, &[1, 1], &mut |_| true),
            Some(2)
        );
    }
}
