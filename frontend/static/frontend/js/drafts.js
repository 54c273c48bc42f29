// Drafts never get lost: every change goes to localStorage at once and to the server
// (PUT draft, debounced). On load the newer of the two wins, so a reload, a crash or an
// expired session (sign in again → same page) brings the work back.
import { api } from "./api.js";

const PREFIX = "counterpoint:draft:";

export class DraftStore {
  constructor({ userId, assignmentId, serverDraft, onStatus, debounceMs = 1200, maxWaitMs = 4000 }) {
    this.key = `${PREFIX}${userId}:${assignmentId}`;
    this.assignmentId = assignmentId;
    this.serverDraft = serverDraft && Object.keys(serverDraft).length ? serverDraft : null;
    this.onStatus = onStatus || (() => {});
    this.debounceMs = debounceMs;
    // Continuous work (a long typing spell) still reaches the server every few seconds.
    this.maxWaitMs = maxWaitMs;
    this.firstUnsavedAt = 0;
    this.timer = 0;
    this.pending = null;
    this.closed = false;
    this.inflight = null;
  }

  local() {
    try {
      const raw = localStorage.getItem(this.key);
      return raw ? JSON.parse(raw) : null;
    } catch (_) {
      return null;
    }
  }

  /** The newest saved draft (browser or server), or null. */
  load() {
    const a = this.local();
    const b = this.serverDraft;
    if (!a) return b;
    if (!b) return a;
    return (a.saved_at || 0) >= (b.saved_at || 0) ? a : b;
  }

  save(draft) {
    if (this.closed) return;
    draft.saved_at = Date.now();
    this.pending = draft;
    try {
      localStorage.setItem(this.key, JSON.stringify(draft));
    } catch (_) {
      // Quota exceeded (a large image): the server copy still holds it.
    }
    const now = Date.now();
    if (!this.firstUnsavedAt) this.firstUnsavedAt = now;
    const wait = Math.max(0, Math.min(this.debounceMs, this.firstUnsavedAt + this.maxWaitMs - now));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), wait);
    this.onStatus("unsaved");
  }

  async flush({ keepalive = false } = {}) {
    clearTimeout(this.timer);
    this.timer = 0;
    if (this.closed || !this.pending) return;
    const draft = this.pending;
    this.pending = null;
    this.firstUnsavedAt = 0;
    this.onStatus("saving");
    try {
      this.inflight = api("PUT", `assignments/${this.assignmentId}/draft/`, { draft }, { keepalive });
      await this.inflight;
      if (!this.closed) this.onStatus(this.pending ? "unsaved" : "saved");
    } catch (err) {
      if (this.closed) return; // submitted meanwhile: nothing to report
      if (err.status === 409) {
        // Submitted elsewhere (another tab): nothing left to save here.
        this.closed = true;
        this.onStatus("closed", err);
        return;
      }
      if (err.status === 400) {
        // The server refuses this draft (e.g. over its size cap): retrying cannot help; the
        // browser copy stands, and the next change tries again.
        this.onStatus("rejected", err);
        return;
      }
      if (!this.pending) this.pending = draft; // retry with the next change or flush
      this.onStatus(err.code === "not_authenticated" ? "signed-out" : "offline", err);
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.flush(), 5000);
    } finally {
      this.inflight = null;
    }
  }

  /** After a successful submit: forget the local copy and stop saving. */
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    try {
      localStorage.removeItem(this.key);
    } catch (_) { /* ignore */ }
  }
}
