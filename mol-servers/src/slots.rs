//! SLOTS: process-slot ownership among the SYSTASKs of a DC's nodes
//! (DESIGN §5, thesis §4.4.3).
//!
//! Every member keeps a replica of the ownership table (which node owns
//! each slot); the table only changes through totally ordered multicasts
//! (Corosync CPG in the real system, a sequencer in the simulator), so the
//! replicas stay identical. Which owned slots are in use is local
//! knowledge: a fork or an exit on a node costs no message.
//!
//! * A member whose free owned slots fall below `free_low` multicasts one
//!   [`Msg::Request`] saying how many it wants (its reserve plus the forks
//!   that just failed); without a donation it asks again after
//!   `retry_rounds`, then twice as long each time (up to 64 ×): when
//!   nobody has slots to spare, asking often only costs multicasts.
//! * A request names how many members it asks (`fanout`): those that own
//!   the most slots, which every replica computes identically. Among them,
//!   a member with more free slots than twice its reserve donates half of
//!   its surplus (at most what was asked) in one [`Msg::Donate`]; the others
//!   stay silent (the seed's version answered from every member, one
//!   multicast each). Each unanswered request doubles the fanout.
//! * Slot sets are disjoint, so members use their own slots without
//!   messages. When a member leaves (fails), its slots go to the primary,
//!   the member with the lowest id.
//!
//! [`Policy::EveryMember`] is the seed's answering rule, kept as the
//! simulation's baseline.
//!
//! The state machine is transport-free: [`Member::deliver`] takes a
//! delivered message and returns the multicasts to send.

use std::collections::BTreeSet;

/// A member (node) id.
pub type NodeId = u32;

/// How members answer requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// This implementation: only members with a real surplus (more than
    /// twice their reserve) answer, with half of it; unanswered requests
    /// back off exponentially.
    Surplus,
    /// The seed prototype's: every member answers every request (one
    /// multicast each, possibly empty) with half of what it has above its
    /// reserve; requests repeat every `retry_rounds`. Kept as the baseline
    /// of the simulation.
    EveryMember,
}

/// Tunables of the algorithm.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// How requests are answered.
    pub policy: Policy,
    /// Slots shared by the members.
    pub nr_slots: usize,
    /// Free slots a member keeps for itself; below it, it asks.
    pub free_low: usize,
    /// Rounds (ticks) an unanswered request waits before it is repeated.
    pub retry_rounds: u64,
}

/// A multicast of the protocol.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Msg {
    /// `from` wants `want` more slots.
    Request {
        /// The member asking.
        from: NodeId,
        /// How many slots it would like.
        want: usize,
        /// How many members are asked: those owning the most slots (a
        /// replicated fact, so every member agrees on who they are). The
        /// requester doubles it with each unanswered request.
        fanout: usize,
    },
    /// `from` gives `slots` to `to`.
    Donate {
        /// The donor.
        from: NodeId,
        /// The receiver.
        to: NodeId,
        /// The slots given (owned by `from` and free when sent).
        slots: Vec<u32>,
    },
}

/// One member's state.
#[derive(Debug, Clone)]
pub struct Member {
    me: NodeId,
    params: Params,
    /// Replicated: the owner of every slot.
    owner: Vec<NodeId>,
    /// Local: which of my slots are in use.
    used: Vec<bool>,
    /// Local: my free owned slots (kept in sync with `owner` and `used`).
    free: BTreeSet<u32>,
    /// Current membership.
    members: BTreeSet<NodeId>,
    /// Round of my outstanding request, if any.
    asked_at: Option<u64>,
    /// Requests in a row that got no donation (the wait before the next
    /// one doubles with each, up to 64 × `retry_rounds`).
    unanswered: u32,
    /// Forks that failed since my last request.
    failed_since_ask: usize,
    now: u64,
}

impl Member {
    /// A member of group `members` (all joined at once): the primary (the
    /// lowest id) owns every slot.
    pub fn new(me: NodeId, params: Params, members: &[NodeId]) -> Member {
        let members: BTreeSet<NodeId> = members.iter().copied().collect();
        let primary = members.iter().next().copied().unwrap_or(me);
        let owner = vec![primary; params.nr_slots];
        let free = if me == primary {
            (0..params.nr_slots as u32).collect()
        } else {
            BTreeSet::new()
        };
        Member {
            me,
            params,
            owner,
            used: vec![false; params.nr_slots],
            free,
            members,
            asked_at: None,
            unanswered: 0,
            failed_since_ask: 0,
            now: 0,
        }
    }

    /// A member joining a running group: it owns nothing and knows no
    /// table until it is given one ([`Member::set_table`]).
    pub fn joiner(me: NodeId, params: Params) -> Member {
        let mut m = Member::new(me, params, &[me]);
        m.free.clear();
        m.owner.fill(NodeId::MAX);
        m
    }

    /// The replicated part of the state, for a joiner: the owner of every
    /// slot and the members.
    pub fn table(&self) -> (Vec<NodeId>, Vec<NodeId>) {
        (self.owner.clone(), self.members.iter().copied().collect())
    }

    /// Takes over the replicated state another member sent (see
    /// [`Member::table`]); the slots it says are ours and not in use are
    /// free. A table of the wrong size is refused.
    pub fn set_table(&mut self, owner: Vec<NodeId>, members: &[NodeId]) -> bool {
        if owner.len() != self.owner.len() {
            return false;
        }
        self.owner = owner;
        self.members = members.iter().copied().collect();
        self.members.insert(self.me);
        self.free = (0..self.owner.len())
            .filter(|&i| self.owner[i] == self.me && !self.used[i])
            .map(|i| i as u32)
            .collect();
        true
    }

    /// A view change: `id` joined (it owns nothing yet).
    pub fn member_joined(&mut self, id: NodeId) {
        self.members.insert(id);
    }

    /// The current members, sorted.
    pub fn members(&self) -> Vec<NodeId> {
        self.members.iter().copied().collect()
    }

    /// How many slots each member owns in this replica.
    pub fn owned_by(&self) -> std::collections::BTreeMap<NodeId, usize> {
        let mut n: std::collections::BTreeMap<NodeId, usize> =
            self.members.iter().map(|&m| (m, 0)).collect();
        for o in &self.owner {
            if let Some(c) = n.get_mut(o) {
                *c += 1;
            }
        }
        n
    }

    /// Whether `slot` is one this member owns and has given out.
    pub fn in_use(&self, slot: u32) -> bool {
        let i = slot as usize;
        i < self.used.len() && self.used[i] && self.owner[i] == self.me
    }

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// Free slots this member owns.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Slots this member owns (free or in use).
    pub fn owned_count(&self) -> usize {
        self.owner.iter().filter(|&&o| o == self.me).count()
    }

    /// The owner of `slot` in this replica.
    pub fn owner_of(&self, slot: u32) -> Option<NodeId> {
        self.owner.get(slot as usize).copied()
    }

    /// Advances the local clock; returns a request to multicast if an
    /// unanswered one is due again, or if the reserve is low.
    pub fn tick(&mut self, now: u64) -> Option<Msg> {
        self.now = now;
        self.maybe_ask()
    }

    /// A fork: takes a free slot (`None`: the fork fails). The second value
    /// is a request to multicast, if the reserve got low.
    pub fn alloc(&mut self) -> (Option<u32>, Option<Msg>) {
        let slot = self.free.pop_first();
        match slot {
            Some(s) => self.used[s as usize] = true,
            None => self.failed_since_ask += 1,
        }
        (slot, self.maybe_ask())
    }

    /// An exit: the slot is free again (it stays this member's).
    pub fn release(&mut self, slot: u32) {
        let i = slot as usize;
        if i < self.used.len() && self.used[i] {
            self.used[i] = false;
            if self.owner[i] == self.me {
                self.free.insert(slot);
            }
        }
    }

    fn maybe_ask(&mut self) -> Option<Msg> {
        if self.free.len() >= self.params.free_low {
            return None;
        }
        if let Some(t) = self.asked_at {
            let backoff = match self.params.policy {
                Policy::Surplus => self.unanswered.min(6),
                Policy::EveryMember => 0,
            };
            let wait = self.params.retry_rounds << backoff;
            if self.now < t + wait {
                return None;
            }
            self.unanswered += 1;
        }
        self.asked_at = Some(self.now);
        // Refill to four times the reserve, plus the forks that failed.
        let want = 4 * self.params.free_low - self.free.len() + self.failed_since_ask;
        self.failed_since_ask = 0;
        let fanout = match self.params.policy {
            Policy::Surplus => 2usize << self.unanswered.min(5),
            Policy::EveryMember => usize::MAX,
        };
        Some(Msg::Request {
            from: self.me,
            want: want.max(1),
            fanout,
        })
    }

    /// Applies a delivered multicast (every member delivers the same
    /// sequence); returns what this member multicasts in answer.
    pub fn deliver(&mut self, msg: &Msg) -> Option<Msg> {
        match msg {
            Msg::Request { from, want, fanout } => {
                if *from == self.me || !self.members.contains(from) {
                    return None;
                }
                if !self.asked(*from, *fanout) {
                    return None;
                }
                let reserve = self.params.free_low;
                let give = match self.params.policy {
                    Policy::Surplus => {
                        let surplus = self.free.len().saturating_sub(2 * reserve);
                        if surplus == 0 {
                            return None;
                        }
                        surplus.div_ceil(2).min(*want.max(&1)).max(1)
                    }
                    Policy::EveryMember => self.free.len().saturating_sub(reserve).div_ceil(2),
                };
                // Give the highest-numbered free slots: low numbers stay
                // with their owner, which keeps tables compact.
                let slots: Vec<u32> = self.free.iter().rev().take(give).copied().collect();
                // In transit: not ours to use any more, although the table
                // changes only when the donation is delivered.
                for s in &slots {
                    self.free.remove(s);
                }
                Some(Msg::Donate {
                    from: self.me,
                    to: *from,
                    slots,
                })
            }
            Msg::Donate { from, to, slots } => {
                // A donation to a member that has left goes to the primary.
                let to = if self.members.contains(to) {
                    to
                } else {
                    self.members.iter().next()?
                };
                let to = *to;
                for &s in slots {
                    let i = s as usize;
                    // Only slots the donor still owned move (a replica check
                    // that every member makes identically).
                    if i < self.owner.len() && self.owner[i] == *from {
                        self.owner[i] = to;
                        if *from == self.me {
                            self.free.remove(&s);
                        }
                        if to == self.me && !self.used[i] {
                            self.free.insert(s);
                        }
                    }
                }
                if to == self.me && !slots.is_empty() {
                    self.asked_at = None;
                    self.unanswered = 0;
                }
                None
            }
        }
    }

    /// Whether this member is among the `fanout` members (other than
    /// `requester`) that own the most slots, ties broken by lower id.
    fn asked(&self, requester: NodeId, fanout: usize) -> bool {
        if fanout >= self.members.len() {
            return true;
        }
        let mut rank: Vec<(usize, NodeId)> = self
            .owned_by()
            .into_iter()
            .filter(|&(m, _)| m != requester)
            .map(|(m, c)| (c, m))
            .collect();
        rank.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        rank.iter().take(fanout).any(|&(_, m)| m == self.me)
    }

    /// A view change: `left` members failed; their slots go to the primary
    /// (lowest surviving id). Slots in use by a failed member's processes
    /// are free again (those processes died with their node).
    pub fn members_left(&mut self, left: &[NodeId]) {
        for l in left {
            self.members.remove(l);
        }
        let Some(&primary) = self.members.iter().next() else {
            return;
        };
        for (i, o) in self.owner.iter_mut().enumerate() {
            if left.contains(o) {
                *o = primary;
                if primary == self.me && !self.used[i] {
                    self.free.insert(i as u32);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params {
            policy: Policy::Surplus,
            nr_slots: 64,
            free_low: 4,
            retry_rounds: 3,
        }
    }

    /// Delivers `msgs` to every member in order, collecting answers.
    fn deliver_all(members: &mut [Member], msgs: Vec<Msg>) -> Vec<Msg> {
        let mut out = Vec::new();
        for m in &msgs {
            for mb in members.iter_mut() {
                out.extend(mb.deliver(m));
            }
        }
        out
    }

    fn owners_agree(members: &[Member]) {
        for s in 0..params().nr_slots as u32 {
            let o = members[0].owner_of(s);
            assert!(members.iter().all(|m| m.owner_of(s) == o), "slot {s}");
        }
    }

    #[test]
    fn a_member_without_slots_gets_a_donation() {
        let ids = [0, 1, 2];
        let mut m: Vec<Member> = ids
            .iter()
            .map(|&i| Member::new(i, params(), &ids))
            .collect();
        assert_eq!(m[0].free_count(), 64);
        let (slot, req) = m[1].alloc();
        assert_eq!(slot, None);
        let req = req.expect("a request");
        let answers = deliver_all(&mut m, vec![req]);
        assert_eq!(answers.len(), 1, "only the primary has a surplus");
        deliver_all(&mut m, answers);
        owners_agree(&m);
        assert!(m[1].free_count() >= 4);
        assert_eq!(m[0].owned_count() + m[1].owned_count(), 64);
        assert!(m[1].alloc().0.is_some());
    }

    #[test]
    fn slots_are_never_owned_twice_and_never_lost() {
        let ids = [0, 1, 2, 3];
        let mut m: Vec<Member> = ids
            .iter()
            .map(|&i| Member::new(i, params(), &ids))
            .collect();
        let mut in_use: Vec<(usize, u32)> = Vec::new();
        let mut pending = Vec::new();
        for round in 0..2000u64 {
            let mut next = Vec::new();
            for msg in std::mem::take(&mut pending) {
                for mb in m.iter_mut() {
                    next.extend(mb.deliver(&msg));
                }
            }
            for (k, mb) in m.iter_mut().enumerate() {
                next.extend(mb.tick(round));
                if !(round + k as u64).is_multiple_of(3) {
                    let (s, r) = mb.alloc();
                    if let Some(s) = s {
                        in_use.push((k, s));
                    }
                    next.extend(r);
                }
            }
            // Exits, oldest first.
            while in_use.len() > 40 {
                let (k, s) = in_use.remove(0);
                m[k].release(s);
            }
            pending = next;
            owners_agree(&m);
            let owned: usize = m.iter().map(Member::owned_count).sum();
            assert_eq!(owned, 64);
            let mut seen = std::collections::HashSet::new();
            for &(_, s) in &in_use {
                assert!(seen.insert(s), "slot {s} in use twice");
            }
        }
    }

    #[test]
    fn a_failed_members_slots_go_to_the_primary() {
        let ids = [0, 1];
        let mut m: Vec<Member> = ids
            .iter()
            .map(|&i| Member::new(i, params(), &ids))
            .collect();
        let req = m[1].alloc().1.expect("request");
        let d = deliver_all(&mut m, vec![req]);
        deliver_all(&mut m, d);
        let given = m[1].owned_count();
        assert!(given > 0);
        m[0].members_left(&[1]);
        assert_eq!(m[0].owned_count(), 64);
        assert_eq!(m[0].free_count(), 64);
    }
}
