// The log's filters: closed behind "Bộ lọc" on a phone (the first event shows at once),
// opened on a wide screen. Without JavaScript they stay one click away everywhere.
(function () {
  "use strict";
  var box = document.getElementById("bo-loc");
  if (box && window.matchMedia && window.matchMedia("(min-width: 48em)").matches) {
    box.open = true;
  }
})();
