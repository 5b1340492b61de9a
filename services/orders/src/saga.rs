//! The order saga's state machine: where an order is ([`State`]), what can happen to it
//! ([`Event`]: a participant's reply, a step's timeout, a cancellation), and what follows
//! ([`Transition`]: its next state, the messages to send, the timeline's entry). Pure: the
//! handler, the timeout sweep and the HTTP routes load the order, call [`advance`] and store
//! the outcome with its messages in one transaction.
//!
//! ```text
//! PENDING/stock ──StockReserved──► PENDING/payment ──PaymentSucceeded──► CONFIRMED (+ OrderConfirmed, PURCHASE)
//!       │ StockRejected                  │ PaymentFailed
//!       ▼                                ▼
//!   CANCELLED out_of_stock          CANCELLED payment_declined       (each + OrderCancelled)
//! any PENDING step unanswered for the step timeout ──► CANCELLED timeout
//! PENDING or CONFIRMED cancelled by its customer or an admin ──► CANCELLED customer | admin
//! ```
//!
//! Invariants (checked by the property test below):
//! - every order reaches a terminal saga state (`CONFIRMED` or later, or `CANCELLED`) once its
//!   steps are answered or have timed out;
//! - an order is confirmed only after `StockReserved` and then `PaymentSucceeded`;
//! - every cancellation of an order that may hold stock or a charge sends `OrderCancelled`,
//!   whose participants release the stock and refund the charge; a reply that comes after the
//!   cancellation changes nothing but the timeline;
//! - a stale or repeated reply (one for a step already passed) changes nothing.

use messaging::contract::reason;

use crate::order::Status;

/// The step a `PENDING` order waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `OrderCreated` sent; waiting for `StockReserved` or `StockRejected`.
    Stock,
    /// `PaymentRequested` sent; waiting for `PaymentSucceeded` or `PaymentFailed`.
    Payment,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Stock => "stock",
            Step::Payment => "payment",
        }
    }

    pub fn parse(text: &str) -> Option<Step> {
        [Step::Stock, Step::Payment]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// Where an order is in its saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub status: Status,
    /// `Some` exactly while the status is `PENDING`.
    pub step: Option<Step>,
}

impl State {
    /// A new order's.
    pub const CREATED: State = State {
        status: Status::Pending,
        step: Some(Step::Stock),
    };

    /// Whether the saga is over (the order may still be shipped, delivered or cancelled).
    pub fn is_settled(self) -> bool {
        self.step.is_none()
    }
}

/// What happens to an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    StockReserved,
    StockRejected {
        product_id: String,
        requested: i64,
        available: i64,
    },
    StockReleased,
    PaymentSucceeded {
        payment_id: String,
    },
    PaymentFailed {
        reason: String,
    },
    PaymentRefunded,
    /// The step waited on was not answered in time.
    Timeout,
    /// Its customer (`customer`) or an administrator (`admin`) cancels it.
    Cancel {
        reason: &'static str,
    },
}

/// A message the saga sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    RequestPayment,
    /// `OrderConfirmed`, and the order's `PURCHASE` events to the stream.
    Confirm,
    Cancel(&'static str),
}

/// What an event does to an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub next: State,
    /// Set when the order becomes `CANCELLED`.
    pub cancel_reason: Option<&'static str>,
    pub send: Vec<Command>,
    /// The timeline's entry: the step, its outcome and a detail.
    pub step: &'static str,
    pub outcome: &'static str,
    pub detail: Option<String>,
}

/// Why an event is refused (only a cancellation can be: the others are replies, which are
/// never refused, at most ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Shipped and delivered orders cannot be cancelled.
    NotCancellable(Status),
}

fn stay(state: State, step: &'static str, outcome: &'static str) -> Option<Transition> {
    Some(Transition {
        next: state,
        cancel_reason: None,
        send: Vec::new(),
        step,
        outcome,
        detail: None,
    })
}

fn cancel(
    reason: &'static str,
    step: &'static str,
    outcome: &'static str,
    detail: Option<String>,
) -> Option<Transition> {
    Some(Transition {
        next: State {
            status: Status::Cancelled,
            step: None,
        },
        cancel_reason: Some(reason),
        send: vec![Command::Cancel(reason)],
        step,
        outcome,
        detail,
    })
}

/// The transition `event` makes from `state`: `Ok(None)` when it changes nothing (a stale or
/// repeated reply, a timeout of a settled order, a cancellation of a cancelled one).
pub fn advance(state: State, event: &Event) -> Result<Option<Transition>, Refused> {
    use Status::*;
    Ok(match (state.status, state.step, event) {
        (Pending, Some(Step::Stock), Event::StockReserved) => Some(Transition {
            next: State {
                status: Pending,
                step: Some(Step::Payment),
            },
            cancel_reason: None,
            send: vec![Command::RequestPayment],
            step: "stock",
            outcome: "reserved",
            detail: None,
        }),
        (
            Pending,
            Some(Step::Stock),
            Event::StockRejected {
                product_id,
                requested,
                available,
            },
        ) => cancel(
            reason::OUT_OF_STOCK,
            "stock",
            "rejected",
            Some(format!(
                "product {product_id}: {requested} requested, {available} available"
            )),
        ),
        (Pending, Some(Step::Payment), Event::PaymentSucceeded { payment_id }) => {
            Some(Transition {
                next: State {
                    status: Confirmed,
                    step: None,
                },
                cancel_reason: None,
                send: vec![Command::Confirm],
                step: "payment",
                outcome: "succeeded",
                detail: Some(format!("payment {payment_id}")),
            })
        }
        (Pending, Some(Step::Payment), Event::PaymentFailed { reason }) => cancel(
            reason::PAYMENT_DECLINED,
            "payment",
            "failed",
            Some(reason.clone()),
        ),
        (Pending, Some(step), Event::Timeout) => {
            cancel(reason::TIMEOUT, step.as_str(), "timed_out", None)
        }
        (Pending | Confirmed, _, Event::Cancel { reason }) => {
            cancel(reason, "cancel", "requested", Some((*reason).to_owned()))
        }
        (Cancelled, _, Event::Cancel { .. }) => None,
        (Shipped | Delivered, _, Event::Cancel { .. }) => {
            return Err(Refused::NotCancellable(state.status));
        }
        // The compensations' answers, whenever they come.
        (_, _, Event::StockReleased) => stay(state, "stock", "released"),
        (_, _, Event::PaymentRefunded) => stay(state, "payment", "refunded"),
        // A charge that lands after the cancellation: payments refunds it on OrderCancelled.
        (Cancelled, _, Event::PaymentSucceeded { payment_id }) => {
            stay(state, "payment", "succeeded_after_cancellation").map(|t| Transition {
                detail: Some(format!(
                    "payment {payment_id}; refunded on the cancellation"
                )),
                ..t
            })
        }
        // A reservation made after the cancellation: inventory releases it on OrderCancelled.
        (Cancelled, _, Event::StockReserved) => stay(state, "stock", "reserved_after_cancellation"),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reply(i: u8) -> Event {
        match i % 8 {
            0 => Event::StockReserved,
            1 => Event::StockRejected {
                product_id: "p".into(),
                requested: 2,
                available: 1,
            },
            2 => Event::StockReleased,
            3 => Event::PaymentSucceeded {
                payment_id: "pay".into(),
            },
            4 => Event::PaymentFailed {
                reason: "card_declined".into(),
            },
            5 => Event::PaymentRefunded,
            6 => Event::Timeout,
            _ => Event::Cancel {
                reason: reason::CUSTOMER,
            },
        }
    }

    #[test]
    fn the_happy_path_confirms_after_stock_and_payment() {
        let t = advance(State::CREATED, &Event::StockReserved)
            .unwrap()
            .unwrap();
        assert_eq!(t.send, [Command::RequestPayment]);
        let t = advance(
            t.next,
            &Event::PaymentSucceeded {
                payment_id: "p1".into(),
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.next.status, Status::Confirmed);
        assert_eq!(t.send, [Command::Confirm]);
        assert!(t.next.is_settled());
    }

    #[test]
    fn each_failure_cancels_with_its_reason() {
        let rejected = advance(State::CREATED, &reply(1)).unwrap().unwrap();
        assert_eq!(rejected.cancel_reason, Some(reason::OUT_OF_STOCK));
        assert_eq!(rejected.send, [Command::Cancel(reason::OUT_OF_STOCK)]);
        let waiting_payment = State {
            status: Status::Pending,
            step: Some(Step::Payment),
        };
        let declined = advance(waiting_payment, &reply(4)).unwrap().unwrap();
        assert_eq!(declined.cancel_reason, Some(reason::PAYMENT_DECLINED));
        assert_eq!(declined.detail.as_deref(), Some("card_declined"));
        for state in [State::CREATED, waiting_payment] {
            let timed_out = advance(state, &Event::Timeout).unwrap().unwrap();
            assert_eq!(timed_out.cancel_reason, Some(reason::TIMEOUT));
        }
    }

    #[test]
    fn shipped_orders_cannot_be_cancelled_and_replies_to_settled_orders_change_nothing() {
        for status in [Status::Shipped, Status::Delivered] {
            let state = State { status, step: None };
            assert_eq!(
                advance(
                    state,
                    &Event::Cancel {
                        reason: reason::ADMIN
                    }
                ),
                Err(Refused::NotCancellable(status))
            );
        }
        let confirmed = State {
            status: Status::Confirmed,
            step: None,
        };
        for event in [
            Event::StockReserved,
            reply(1),
            reply(3),
            reply(4),
            Event::Timeout,
        ] {
            assert_eq!(advance(confirmed, &event), Ok(None), "{event:?}");
        }
        let cancel = advance(
            confirmed,
            &Event::Cancel {
                reason: reason::ADMIN,
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(cancel.send, [Command::Cancel(reason::ADMIN)]);
    }

    proptest! {
        /// Any interleaving of replies, duplicates, timeouts and cancellations: the order
        /// ends settled once a timeout has come; confirmed only after a reservation and then a
        /// payment, with exactly one confirmation sent; a cancellation after a reservation or a
        /// charge always sends OrderCancelled; nothing follows a cancellation but the timeline.
        #[test]
        fn every_interleaving_ends_settled_and_consistent(events in proptest::collection::vec(0u8..8, 0..24)) {
            let mut state = State::CREATED;
            let mut reserved = false;
            let mut paid = false;
            let mut confirms = 0;
            let mut cancels = 0;
            let mut events: Vec<Event> = events.into_iter().map(reply).collect();
            // The sweep times every step out in the end.
            events.push(Event::Timeout);
            for event in &events {
                let before = state;
                match advance(state, event) {
                    Err(Refused::NotCancellable(status)) => {
                        prop_assert!(matches!(status, Status::Shipped | Status::Delivered));
                    }
                    Ok(None) => {}
                    Ok(Some(t)) => {
                        if before.status == Status::Cancelled {
                            prop_assert_eq!(t.next, before, "a cancelled order stays cancelled");
                            prop_assert!(t.send.is_empty());
                        }
                        for command in &t.send {
                            match command {
                                Command::RequestPayment => {
                                    prop_assert_eq!(before.step, Some(Step::Stock));
                                    reserved = true;
                                }
                                Command::Confirm => {
                                    prop_assert!(reserved, "confirmed without stock");
                                    prop_assert_eq!(before.step, Some(Step::Payment));
                                    paid = true;
                                    confirms += 1;
                                }
                                Command::Cancel(_) => {
                                    prop_assert_eq!(t.next.status, Status::Cancelled);
                                    prop_assert!(t.cancel_reason.is_some());
                                    cancels += 1;
                                }
                            }
                        }
                        if t.next.status == Status::Cancelled && before.status != Status::Cancelled {
                            prop_assert_eq!(t.send.len(), 1, "a cancellation sends OrderCancelled");
                        }
                        prop_assert_eq!(t.next.step.is_some(), t.next.status == Status::Pending);
                        state = t.next;
                    }
                }
            }
            prop_assert!(state.is_settled(), "ended in {:?}", state);
            prop_assert!(confirms <= 1);
            prop_assert!(cancels <= 1);
            if state.status == Status::Confirmed {
                prop_assert!(paid && reserved);
            }
        }
    }
}
