//! The invariants checked after every step.

use super::*;

impl Sim {
    pub(super) fn check(&mut self) {
        let Some(p) = partition(&self.ctl.image).cloned() else {
            return;
        };
        let mut holders: Vec<i32> = p.isr.clone();
        if p.leader != NO_LEADER && !holders.contains(&p.leader) {
            holders.push(p.leader);
        }
        for id in self.ids() {
            self.check_node(id);
        }
        // 1. Acknowledged records stay on the leader and the ISR.
        for (offset, value) in &self.acked {
            for m in &holders {
                let got = self.node(*m).log.get(*offset as usize).copied();
                if got.map(|e| e.value) != Some(*value) {
                    self.fail(format!(
                        "acked {value} at {offset} is {got:?} on node {m} (leader {}, isr {:?})",
                        p.leader, p.isr
                    ));
                }
            }
            if !self.cfg.power_loss && self.committed.get(*offset as usize) != Some(value) {
                self.fail(format!(
                    "acked {value} at {offset} is not what was committed there ({:?})",
                    self.committed.get(*offset as usize)
                ));
            }
        }
        // Committed records are on every ISR member.
        if !self.cfg.power_loss {
            for m in &p.isr {
                let log = &self.node(*m).log;
                let upto = self.committed.len().min(log.len());
                if upto < self.committed.len()
                    || log[..upto]
                        .iter()
                        .zip(&self.committed)
                        .any(|(e, c)| e.value != *c)
                {
                    self.fail(format!(
                        "ISR member {m} lacks committed records (committed up to {}, its log end {})",
                        self.committed.len(),
                        log.len()
                    ));
                }
            }
        }
    }

    pub(super) fn check_node(&mut self, id: i32) {
        let n = self.node(id);
        // 4. The epoch cache describes the log.
        let entries = n.cache.entries();
        if !n.log.is_empty() && entries.first().map(|e| e.start_offset) != Some(0) {
            self.fail(format!("node {id}: epoch cache does not start at 0"));
        }
        for (k, e) in entries.iter().enumerate() {
            let end = entries
                .get(k + 1)
                .map_or(n.leo(), |next| next.start_offset)
                .min(n.leo());
            for o in e.start_offset..end {
                if n.log[o as usize].epoch != e.epoch {
                    self.fail(format!(
                        "node {id}: epoch cache puts offset {o} in epoch {}, the log has {}",
                        e.epoch, n.log[o as usize].epoch
                    ));
                }
            }
        }
        if !n.alive {
            return;
        }
        let Some(state) = n.state().cloned() else {
            return;
        };
        let (hw, leo, incarnation) = (n.hw, n.leo(), n.incarnation);
        if hw > leo {
            self.fail(format!("node {id}: HW {hw} past its log end {leo}"));
        }
        // 1. Records below any HW are the committed ones.
        if !self.cfg.power_loss {
            let upto = (hw as usize).min(self.committed.len());
            if let Some(o) = (0..upto).find(|o| n.log[*o].value != self.committed[*o]) {
                self.fail(format!(
                    "node {id} holds {:?} at committed offset {o} (HW {hw}), committed was {}",
                    n.log[o], self.committed[o]
                ));
            }
            if state.leader == id {
                for o in self.committed.len()..hw as usize {
                    let v = self.node(id).log[o].value;
                    self.committed.push(v);
                }
            }
        }
        if state.leader != id {
            return;
        }
        // 2. The HW of a leader.
        if let Some((inc, epoch, floor)) = self.hw_floor.get(&id).copied() {
            if inc == incarnation && epoch == state.leader_epoch && hw < floor {
                self.fail(format!(
                    "leader {id}'s HW moved back from {floor} to {hw} in epoch {epoch}"
                ));
            }
        }
        self.hw_floor
            .insert(id, (incarnation, state.leader_epoch, hw));
        let isr = self.node(id).hw_isr();
        for m in &isr {
            let m_leo = self.node(*m).leo();
            if hw > m_leo && !self.cfg.power_loss {
                self.fail(format!(
                    "leader {id}'s HW {hw} is past ISR member {m}'s log end {m_leo} (isr {isr:?})"
                ));
            }
        }
    }
}
