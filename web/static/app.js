'use strict';
// Activity: follow the event stream (Server-Sent Events) and append each
// event to the table. The browser reconnects on its own and sends the last
// id it got (Last-Event-ID), so the server resumes without gaps.
(function () {
  var table = document.getElementById('activity');
  if (!table || !table.dataset.stream || !window.EventSource) return;
  var body = table.tBodies[0];
  var live = document.getElementById('live');
  function cell(row, text) {
    var td = document.createElement('td');
    td.textContent = text;
    row.appendChild(td);
  }
  function when(ms) {
    var d = new Date(ms);
    return isNaN(d) ? '-' : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }
  var es = new EventSource(table.dataset.stream);
  es.onopen = function () { if (live) live.textContent = 'live'; };
  es.onerror = function () { if (live) live.textContent = 'reconnecting...'; };
  es.onmessage = function (msg) {
    var ev;
    try { ev = JSON.parse(msg.data); } catch (e) { return; }
    var empty = document.getElementById('empty');
    if (empty) empty.remove();
    var row = document.createElement('tr');
    cell(row, when(ev.ts));
    cell(row, ev.type || '');
    cell(row, ev.computer || '');
    var actor = typeof ev.actor === 'string' ? ev.actor : '';
    if (typeof ev.via === 'string') actor += (actor ? ' ' : '') + 'via ' + ev.via;
    cell(row, actor);
    var details = [];
    Object.keys(ev).sort().forEach(function (k) {
      if (['id', 'ts', 'type', 'computer', 'actor', 'via'].indexOf(k) < 0)
        details.push(k + '=' + (typeof ev[k] === 'string' ? ev[k] : JSON.stringify(ev[k])));
    });
    cell(row, details.join(' '));
    cell(row, ev.id || '');
    body.appendChild(row);
  };
})();
