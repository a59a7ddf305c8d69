//! Driving the simulator: rounds of simulated time, batches of ingress messages answered
//! together, and a rollout run to rest with the faults alongside.

use std::fmt::Debug;
use std::rc::Rc;
use std::time::Duration;

use candid::{decode_one, CandidType, Principal};
use fleet_api::rollout::RolloutStatus;
use ic_sim::{IcSim, RawMessageId};
use serde::Deserialize;

use super::faults::Injector;
use super::SECOND_NS;
use crate::error::CliError;
use crate::manager::{self as mgr, Manager};
use crate::progress::count_bar;
use crate::progress::watch::{at_rest, WaveBars};

/// Simulated time per round: the manager's timer interval.
const ROUND: Duration = Duration::from_secs(1);

/// The simulator, and the rounds run on it so far.
pub(super) struct Rehearsal {
    pub sim: Rc<IcSim>,
    pub rounds: u64,
    /// Progress bars on a terminal.
    pub show_progress: bool,
}

impl Rehearsal {
    pub(super) fn new(sim: Rc<IcSim>, show_progress: bool) -> Self {
        Rehearsal {
            sim,
            rounds: 0,
            show_progress,
        }
    }

    fn step(&mut self) {
        self.sim.advance_time(ROUND);
        self.sim.tick();
        self.rounds += 1;
    }

    pub(super) fn now(&self) -> u64 {
        self.sim.get_time().as_nanos_since_unix_epoch()
    }

    /// Sends a call as `sender`; it is answered by the rounds of [`Self::run_all`].
    pub(super) fn submit(
        &self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<RawMessageId, CliError> {
        self.sim
            .submit_call(canister, sender, method, arg)
            .map_err(|e| CliError::Refused(format!("{method} on {canister}: {}", e.reject_message)))
    }

    /// Runs rounds until every message has an answer, with a bar named `what` on a terminal.
    pub(super) fn run_all(
        &mut self,
        messages: &[RawMessageId],
        what: Option<&str>,
    ) -> Result<Vec<Vec<u8>>, CliError> {
        let bar = what.and_then(|w| count_bar(self.show_progress, messages.len() as u64, w));
        let mut replies: Vec<Option<Vec<u8>>> = vec![None; messages.len()];
        let mut answered = 0;
        for _ in 0..100_000 {
            for (i, m) in messages.iter().enumerate() {
                if replies[i].is_none() {
                    match self.sim.ingress_status(m) {
                        Some(Ok(bytes)) => {
                            replies[i] = Some(bytes);
                            answered += 1;
                        }
                        Some(Err(e)) => {
                            return Err(CliError::Refused(format!(
                                "message {i} was rejected: {}",
                                e.reject_message
                            )))
                        }
                        None => {}
                    }
                }
            }
            if let Some(b) = &bar {
                b.set_position(answered as u64)
            }
            if answered == messages.len() {
                if let Some(b) = bar {
                    b.finish_and_clear();
                }
                return Ok(replies.into_iter().flatten().collect());
            }
            self.step();
        }
        Err(CliError::Refused(format!(
            "{} messages still unanswered after 100000 rounds",
            messages.len() - answered
        )))
    }
}

/// Decodes a reply of type `Result<T, E>`; `what` names the call when it returns an error.
pub(super) fn decode_reply<T, E>(bytes: &[u8], method: &str, what: &str) -> Result<T, CliError>
where
    T: CandidType + for<'de> Deserialize<'de>,
    E: CandidType + for<'de> Deserialize<'de> + Debug,
{
    decode_one::<Result<T, E>>(bytes)
        .map_err(|e| CliError::Io(format!("{method} reply: {e}")))?
        .map_err(|e| CliError::Refused(format!("{what}: {e:?}")))
}

/// A rollout driven to rest.
pub(super) struct Driven {
    pub status: RolloutStatus,
    pub rounds: u64,
    pub simulated_ns: u64,
}

/// Runs rounds until the rollout comes to rest, with the faults alongside. Bake times with
/// nothing in flight pass at once in simulated time, but never past a fault's next change.
pub(super) fn drive(
    r: &mut Rehearsal,
    m: &Manager,
    inj: &mut Injector,
    max_rounds: u64,
) -> Result<Driven, CliError> {
    let time_before = r.now();
    let rounds_before = r.rounds;
    let mut waves = WaveBars::new(r.show_progress);
    let status = loop {
        let s = inj.poll(m)?;
        waves.update(
            &s,
            &format!(
                "round {}, {} s simulated",
                r.rounds - rounds_before,
                (r.now() - time_before) / SECOND_NS
            ),
        );
        if at_rest(&s) {
            break s;
        }
        if r.rounds - rounds_before >= max_rounds {
            return Err(CliError::Refused(format!(
                "the rollout has not come to rest after {max_rounds} rounds: {}",
                mgr::rollout_text(&s)
            )));
        }
        inj.act(m, &s)?;
        if let (Some(at), 0) = (s.next_wave_at, s.counts.in_flight + s.counts.busy) {
            let at = inj.next_event_at().map_or(at, |e| e.min(at));
            let now = r.now();
            let round = ROUND.as_nanos() as u64;
            if at > now + round {
                r.sim.advance_time(Duration::from_nanos(at - now - round));
            }
        }
        r.step();
    };
    waves.finish();
    Ok(Driven {
        status,
        rounds: r.rounds - rounds_before,
        simulated_ns: r.now() - time_before,
    })
}
