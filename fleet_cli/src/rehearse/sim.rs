//! Driving the simulator: rounds of simulated time, batches of ingress messages answered
//! together, and a rollout run to rest with the faults alongside.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::{Duration, Instant};

use candid::{decode_one, encode_args, Principal};
use fleet_api::endpoint::Endpoint;
use fleet_api::rollout::RolloutStatus;
use ic_sim::{IcSim, RawMessageId};

use super::faults::Injector;
use super::SECOND_NS;
use crate::dashboard::Dashboard;
use crate::error::CliError;
use crate::manager::{self as mgr, Manager};
use crate::progress::count_bar;
use crate::progress::watch::{at_rest, WaveBars};

/// Simulated time per round: the manager's timer interval.
const ROUND: Duration = Duration::from_secs(1);

/// A call of `E` sent with [`Rehearsal::submit`], not answered yet.
pub(super) struct Sent<E> {
    id: RawMessageId,
    endpoint: PhantomData<E>,
}

/// The simulator, and the rounds run on it so far.
pub(super) struct Rehearsal {
    pub sim: Rc<IcSim>,
    pub rounds: u64,
    /// Progress bars on a terminal.
    pub show_progress: bool,
    /// The dashboard served between rounds, the least wall time a round takes, and when the
    /// last one ended.
    dashboard: Option<(Rc<Dashboard>, Duration, Instant)>,
}

impl Rehearsal {
    pub(super) fn new(sim: Rc<IcSim>, show_progress: bool) -> Self {
        Rehearsal {
            sim,
            rounds: 0,
            show_progress,
            dashboard: None,
        }
    }

    /// Serves `dashboard` between rounds, each of which then takes at least `pace`.
    pub(super) fn show(&mut self, dashboard: Rc<Dashboard>, pace: Duration) {
        self.dashboard = Some((dashboard, pace, Instant::now()));
    }

    fn step(&mut self) {
        self.sim.advance_time(ROUND);
        self.sim.tick();
        self.rounds += 1;
        if let Some((dashboard, pace, last)) = &mut self.dashboard {
            dashboard.serve_pending();
            let due = *last + *pace;
            while Instant::now() < due {
                dashboard.serve_for(due.saturating_duration_since(Instant::now()));
            }
            *last = Instant::now();
        }
    }

    pub(super) fn now(&self) -> u64 {
        self.sim.get_time().as_nanos_since_unix_epoch()
    }

    /// Sends a call of `E` as `sender`; it is answered by the rounds of [`Self::run_all`].
    pub(super) fn submit<E: Endpoint>(
        &self,
        canister: Principal,
        sender: Principal,
        args: E::Args,
    ) -> Result<Sent<E>, CliError> {
        let method = E::NAME;
        let arg = encode_args(args).map_err(|e| CliError::Io(e.to_string()))?;
        let id = self
            .sim
            .submit_call(canister, sender, method, arg)
            .map_err(|e| {
                CliError::Refused(format!("{method} on {canister}: {}", e.reject_message))
            })?;
        Ok(Sent {
            id,
            endpoint: PhantomData,
        })
    }

    /// Runs rounds until every message has an answer, with a bar named `what` on a terminal;
    /// returns the replies in the order of `messages`.
    pub(super) fn run_all<E: Endpoint>(
        &mut self,
        messages: &[Sent<E>],
        what: Option<&str>,
    ) -> Result<Vec<E::Reply>, CliError> {
        let bar = what.and_then(|w| count_bar(self.show_progress, messages.len() as u64, w));
        let mut replies: Vec<Option<Vec<u8>>> = vec![None; messages.len()];
        let mut answered = 0;
        for _ in 0..100_000 {
            for (i, m) in messages.iter().enumerate() {
                if replies[i].is_none() {
                    match self.sim.ingress_status(&m.id) {
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
                return replies
                    .into_iter()
                    .flatten()
                    .map(|bytes| {
                        decode_one::<E::Reply>(&bytes)
                            .map_err(|e| CliError::Io(format!("{} reply: {e}", E::NAME)))
                    })
                    .collect();
            }
            self.step();
        }
        Err(CliError::Refused(format!(
            "{} messages still unanswered after 100000 rounds",
            messages.len() - answered
        )))
    }
}

/// A refused call as an error; `what` names the call.
pub(super) fn refused<E: Debug>(what: &str) -> impl FnOnce(E) -> CliError + '_ {
    move |e| CliError::Refused(format!("{what}: {e:?}"))
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
