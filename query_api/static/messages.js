// The message model's rule (projections/messages.py) for what the widget hears live after Join, so that a
// correction or retraction arriving over XMPP changes the lines exactly as the archive's feed would. The same
// rule, restated step by step in the Python's terms (tests/query_api/web/test_messages_js.py holds the two
// to the same answers on random histories):
// - a line is known by every id it came with (``refs``: stanza-id, origin-id, id attribute, and those of the
//   corrections applied to it) and, while a correction line awaits its message, by the id it names too
//   (``lines.ids``); a correction or retraction names one: the line the room gave it (``owned``: its
//   stanza-id, or a correction's applied to it, ``stanza_aliases``) is meant before any carrying it as a
//   client id (origin-id, id attribute, a correction's), and among several of either kind the newest
//   (``Book.find``, ``messages.owns``: a post reusing a message's stanza-id as its own id takes none of that
//   message's moderations, retractions or corrections);
// - a correction applies only when it comes from the line's author (``same_author``): the text is replaced,
//   the line marked edited and known by the correction's ids too; anybody else's correction is a line of its
//   own, marked edited (``correction_line``), awaiting the id it names when no line is known by it;
// - a retraction removes the line when its author sent it or the room moderated it, the first removal kept;
//   one naming no line is held (a ``retraction`` line, never shown) awaiting the id, and so is one meeting a
//   line that carries the id only as a client id, unless it is the author's retraction or a moderation of a
//   line the room gave no stanza-id (``removes``: it waits for the line the room gave the id);
// - a message (or a message gaining ids through a correction) takes what awaited any of its ids, in the order
//   heard, as if it had come after it (``_settle``; a removal it does not take waits on).
// Lines are plain objects as the widget's feed sends them ({kind, nick, body, refs, stanza_id, stanza_aliases,
// occupant_id, author, removed, edited, ...}), plus ``key`` (what identifies the line in the book) and, for a line heard live, ``seq`` (its
// order) and the sender's real JID when the room shows it.
(function () {
  "use strict";

  // A page joined for days must not grow without end (nor a hostile room grow it): the oldest lines go, as
  // lines older than the widget's (a correction naming one then awaits, as one naming an older message).
  var HELD = 200;    // awaiting lines kept at most
  var LINES = 2000;  // lines kept at most (the widget shows 300)

  function bare(jid) { return (jid || "").split("/")[0]; }

  // XEP-0308 section 3 / XEP-0421: the same occupant-id when both carry one, else the same bare real JID
  // when both carry one, else the same nick. The real JID as the widget knows it: a line from the archive's
  // feed carries the feed's key of it in its author's stay (``author``, widget_feed.author_key: the JID itself
  // is withheld, and one stay is not linked to another: an author back in another stay is somebody else here,
  // until the feed, after Leave, shows the archive's verdict), and an item heard live the key its nick has
  // (``Book.know``), or the JID where the room shows it.
  function sameAuthor(line, who) {
    if (line.occupant_id && who.occupant_id) { return line.occupant_id === who.occupant_id; }
    if (line.author && who.author) { return line.author === who.author; }
    if (line.jid && who.jid) { return bare(line.jid) === bare(who.jid); }
    if (line.nick && who.nick) { return line.nick === who.nick; }
    return true;
  }

  // Whether the room gave ``line`` the id ``ref`` (messages.owned): its stanza-id or a correction's applied.
  function owned(line, ref) {
    return line.stanza_id === ref || (line.stanza_aliases || []).indexOf(ref) >= 0;
  }

  // What a retraction naming ``ref`` does to ``line``, known by it (messages.removes): true removes it, false
  // refuses it, null leaves it waiting. Moderators may remove any message (XEP-0425), authors only their own
  // (XEP-0424); a moderation names the room's stanza-id: a line carrying ``ref`` only as a client id (a
  // decoy's) is not meant unless the room gave it no stanza-id, and anybody else's retraction waits past it.
  function removes(line, ref, retraction) {
    if (owned(line, ref)) { return !!retraction.moderated || sameAuthor(line, retraction); }
    if (retraction.moderated) { return line.stanza_id ? null : true; }
    return sameAuthor(line, retraction) ? true : null;
  }

  function union(refs, more) {
    return refs.concat(more.filter(function (ref) { return refs.indexOf(ref) < 0; }));
  }

  // Every id a line is known by (lines.ids).
  function ids(line) {
    return line.kind === "message" && line.awaiting ? union(line.refs || [], [line.awaiting]) : (line.refs || []);
  }

  function with_(line, changes) { return Object.assign({}, line, changes); }

  // ``line`` showing ``body`` (messages._corrected), known by ``more`` ids too, owning ``roomIds`` too.
  function corrected(line, body, more, roomIds) {
    return with_(line, { body: body, edited: true, refs: union(line.refs || [], more.filter(function (ref) {
      return ids(line).indexOf(ref) < 0;
    })), stanza_aliases: union(line.stanza_aliases || [], roomIds.filter(function (ref) {
      return ref && !owned(line, ref);
    })) });
  }

  // ``line`` after the correction line that awaited it (messages.absorb): its text, ids and removal.
  function absorb(line, correction) {
    line = corrected(line, correction.body, ids(correction), [correction.stanza_id].concat(correction.stanza_aliases || []));
    return !line.removed && correction.removed ? with_(line, { removed: correction.removed }) : line;
  }

  // A book of lines in the order heard: ``find`` and ``awaiting`` as messages.Book, ``apply`` as MemoryBook.
  function Book() {
    this.lines = [];  // oldest first (a line put again keeps its place)
    this.held = [];   // the awaiting ones, oldest first
    this.keys = new Map();  // nick -> the author key of whoever holds it now, as the feed's lines tell
  }

  // The feed's lines shown at Join (``feed``, in the transcript's order, each with its ``key``): its messages
  // are the book's first lines, and all of them say who holds which nick.
  Book.prototype.start = function (feed) {
    var self = this;
    feed.forEach(function (line) { self.know(line); });
    this.apply({ put: feed.filter(function (line) { return line.kind === "message"; }), dropped: [] });
  };

  // Who holds a nick, for the items heard live, which carry no key: the author key of the nick's latest line
  // from the feed (a message, a join, a nick change), until the nick is given up (left, renamed: the key goes
  // with its holder, also on a rename heard live). A join heard live (not the room's list of who is in at
  // Join, ``roster``, as the feed last told) leaves the nick's holder unknown: the room shows the widget no
  // JID, so a newcomer under a nick that came free cannot be told from its earlier holder back. Such a
  // holder's items are told by nick, as in a room without real JIDs; the archive, knowing the JIDs, may decide
  // otherwise (shown after Leave).
  var TELLING = ["message", "joined", "left", "nick_changed"];  // the lines that say who holds their nick

  Book.prototype.know = function (line) {
    if (line.roster || TELLING.indexOf(line.kind) < 0) { return; }
    var carried = line.kind === "nick_changed" ? this.keys.get(line.old_nick) : null;
    this.keys.delete(line.kind === "nick_changed" ? line.old_nick : line.nick);
    if (line.kind === "left") { return; }
    var key = line.id !== undefined ? line.author : carried;  // the feed's, or the renamed holder's
    if (key || line.id !== undefined) { this.keys.set(line.nick, key || null); }
  };

  Book.prototype.find = function (ref) {
    var known = null;  // the newest carrying ``ref`` as a client id, while no line owns it
    for (var i = this.lines.length - 1; i >= 0; i--) {
      var line = this.lines[i];
      if (line.kind !== "message" || ids(line).indexOf(ref) < 0) { continue; }
      if (owned(line, ref)) { return line; }
      if (!known) { known = line; }
    }
    return known;
  };

  Book.prototype.awaiting = function (ref) {
    return this.held.filter(function (line) { return line.awaiting === ref; });
  };

  Book.prototype.indexOf = function (key) {
    for (var i = this.lines.length - 1; i >= 0; i--) { if (this.lines[i].key === key) { return i; } }
    return -1;
  };

  // Returns the awaiting lines ``changes`` pushed out of the book (beyond HELD), as dropped lines.
  Book.prototype.apply = function (changes) {
    var self = this;
    changes.dropped.forEach(function (line) {
      var i = self.indexOf(line.key);
      if (i >= 0) { self.lines.splice(i, 1); }
    });
    changes.put.forEach(function (line) {
      var i = self.indexOf(line.key);
      if (i >= 0) { self.lines[i] = line; } else { self.lines.push(line); }
    });
    if (this.lines.length > LINES) { this.lines.splice(0, this.lines.length - LINES); }
    this.held = this.lines.filter(function (line) { return line.awaiting; });
    var evicted = this.held.slice(0, Math.max(0, this.held.length - HELD));
    if (evicted.length) { this.apply({ put: [], dropped: evicted }); }
    return evicted;
  };

  function settle(line, book, newIds) {
    var put = [], dropped = [], todo = newIds.slice(), seen = [line.key];
    while (todo.length) {
      var waiting = [];
      todo.forEach(function (ref) {
        book.awaiting(ref).forEach(function (w) {
          if (seen.indexOf(w.key) < 0 && waiting.indexOf(w) < 0) { waiting.push(w); }
        });
      });
      if (!waiting.length) { break; }
      waiting.sort(function (a, b) { return a.seq - b.seq; });
      todo = [];
      waiting.forEach(function (other) {
        if (seen.indexOf(other.key) >= 0) { return; }
        if (other.kind === "retraction") {
          var verdict = removes(line, other.awaiting, other.removed);
          // Not this line's to take or refuse: waits on (asked again if a correction taken in gives the line
          // the id as the room's).
          if (verdict === null) { return; }
          seen.push(other.key);
          if (verdict && !line.removed) { line = with_(line, { removed: other.removed }); }
          dropped.push(other);
          return;
        }
        seen.push(other.key);
        if (sameAuthor(line, other)) {
          line = absorb(line, other);
          todo = todo.concat(ids(other));
          dropped.push(other);
        } else {
          put.push(with_(other, { awaiting: null }));
        }
      });
    }
    put.push(line);
    return { put: put, dropped: dropped };
  }

  // What ``heard`` (a {kind: message|correction|retraction|...} item from xmpp.js, with ``key`` and ``seq``)
  // does to the lines of ``book``: {put: lines created or changed (a changed one has the key of the line it
  // takes the place of), dropped: lines taken into another and gone}.
  function step(heard, book) {
    var refs = heard.refs || [];
    if (!heard.author && book.keys.get(heard.nick)) { heard = with_(heard, { author: book.keys.get(heard.nick) }); }
    if (heard.kind === "message") { return settle(heard, book, refs); }
    if (heard.kind === "correction") {
      var target = book.find(heard.replaces);
      if (target && sameAuthor(target, heard)) {
        return settle(corrected(target, heard.body, refs, [heard.stanza_id]), book, refs);
      }
      var line = with_(heard, { kind: "message", edited: true, corrects: heard.replaces, awaiting: target ? null : heard.replaces });
      delete line.replaces;
      return settle(line, book, refs);
    }
    if (heard.kind === "retraction") {
      var removal = { moderated: !!heard.moderated, nick: heard.nick, jid: heard.jid || null, occupant_id: heard.occupant_id || null,
                      author: heard.author || null };
      var retracted = book.find(heard.target);
      var verdict = retracted ? removes(retracted, heard.target, removal) : null;
      if (verdict === null) {
        return { put: [{ key: heard.key, seq: heard.seq, kind: "retraction", nick: heard.nick, jid: removal.jid,
                         occupant_id: removal.occupant_id, author: removal.author, removed: removal, awaiting: heard.target, refs: [] }], dropped: [] };
      }
      if (verdict && !retracted.removed) {
        return { put: [with_(retracted, { removed: removal })], dropped: [] };
      }
      return { put: [], dropped: [] };
    }
    return { put: [heard], dropped: [] };
  }

  window.ChatArchiveMessages = { step: step, Book: Book, ids: ids };
})();
