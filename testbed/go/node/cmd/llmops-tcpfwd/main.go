// llmops-tcpfwd forwards TCP connections from -listen to -target. The test bed's real nodes live in
// network namespaces of their own and reach the loopback-only kube-apiserver through it, on the
// address of the bridge the test bed created for them.
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"os"
	"strconv"
)

func main() {
	listen := flag.String("listen", "", "address to listen on, host:port")
	target := flag.String("target", "", "address to forward to, host:port")
	pidfile := flag.String("pidfile", "", "write our pid here (it also marks the process as the test bed's)")
	flag.Parse()
	if *listen == "" || *target == "" {
		log.Fatal("-listen and -target are required")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	if *pidfile != "" {
		if err := os.WriteFile(*pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	for {
		conn, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go forward(conn, *target)
	}
}

func forward(in net.Conn, target string) {
	defer in.Close()
	out, err := net.Dial("tcp", target)
	if err != nil {
		log.Printf("dial %s: %v", target, err)
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(out, in); out.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(in, out); in.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
}
