// Command fileserver serves a directory over HTTP, like an nginx serving
// static files: the test node's stand-in for the drill's web server.
// Built static into the file-server image; it logs every request.
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
)

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func main() {
	root := flag.String("root", "/usr/share/nginx/html", "`directory` to serve")
	addr := flag.String("addr", ":8080", "`address` to listen on")
	flag.Parse()
	if _, err := os.Stat(*root); err != nil {
		log.Fatalf("fileserver: %v", err)
	}
	files := http.FileServer(http.Dir(*root))
	log.Printf("serving %s on %s", *root, *addr)
	log.Fatal(http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		files.ServeHTTP(rec, r)
		log.Printf("%s %s %s %d", r.RemoteAddr, r.Method, r.URL.Path, rec.status)
	})))
}
