// llmops-extproc-gateway: the test bed's stand-in for a Gateway's data plane in front of an InferencePool.
//
// No Gateway implementation runs on the test bed (Envoy, which kgateway, Istio and Envoy Gateway are built on,
// is not a Go module or a Debian package), so this small proxy plays Envoy's part towards the real endpoint
// picker (EPP): for every HTTP request it opens an Envoy ext_proc stream to the EPP, sends the request
// headers and body as Envoy does with the processing mode the EPP expects (headers SEND, body
// FULL_DUPLEX_STREAMED), forwards the request to the endpoint the EPP chose (x-gateway-destination-endpoint)
// with the body the EPP returned, then sends the response headers and body back through the stream, as
// Envoy does. It is not a gateway product: it says so in every response (x-llmops-gateway) and names the
// endpoint the EPP picked (x-llmops-gateway-endpoint), which is what the tests check.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extproc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	destinationHeader = "x-gateway-destination-endpoint" // the EPP's answer (pkg/epp/metadata)
	identity          = "llmops test bed ext_proc gateway (plays Envoy towards the real endpoint picker; not a gateway product)"
)

// hop-by-hop headers (RFC 9110 7.6.1) belong to one connection: a proxy does not pass them on, as Envoy does not
var hopByHop = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true, "transfer-encoding": true, "upgrade": true,
	"te": true, "trailer": true, "proxy-authenticate": true, "proxy-authorization": true, "content-length": true,
}

type gateway struct {
	epp     extproc.ExternalProcessorClient
	client  *http.Client
	timeout time.Duration
}

func headerMap(pairs [][2]string) *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for _, p := range pairs {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: p[0], RawValue: []byte(p[1])})
	}
	return m
}

func requestPairs(r *http.Request) [][2]string {
	pairs := [][2]string{{":method", r.Method}, {":path", r.URL.RequestURI()}, {":authority", r.Host}, {":scheme", "http"}}
	for key, values := range r.Header {
		for _, v := range values {
			pairs = append(pairs, [2]string{strings.ToLower(key), v})
		}
	}
	return pairs
}

// picked is what the EPP answered for the request: the endpoint, the body to send, headers to set, or an
// immediate response (the EPP refused or shed the request).
type picked struct {
	endpoint  string
	body      []byte
	setHeader map[string]string
	immediate *extproc.ImmediateResponse
}

func (g *gateway) pick(stream extproc.ExternalProcessor_ProcessClient, r *http.Request, body []byte) (*picked, error) {
	if err := stream.Send(&extproc.ProcessingRequest{Request: &extproc.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extproc.HttpHeaders{Headers: headerMap(requestPairs(r)), EndOfStream: len(body) == 0},
	}}); err != nil {
		return nil, fmt.Errorf("sending the request headers: %w", err)
	}
	if len(body) > 0 {
		if err := stream.Send(&extproc.ProcessingRequest{Request: &extproc.ProcessingRequest_RequestBody{
			RequestBody: &extproc.HttpBody{Body: body, EndOfStream: true},
		}}); err != nil {
			return nil, fmt.Errorf("sending the request body: %w", err)
		}
	}
	result := &picked{setHeader: map[string]string{}}
	var newBody []byte
	headersDone, bodyDone := false, len(body) == 0
	for !headersDone || !bodyDone {
		resp, err := stream.Recv()
		if err != nil {
			return nil, fmt.Errorf("reading the picker's answer: %w", err)
		}
		switch v := resp.Response.(type) {
		case *extproc.ProcessingResponse_ImmediateResponse:
			result.immediate = v.ImmediateResponse
			return result, nil
		case *extproc.ProcessingResponse_RequestHeaders:
			headersDone = true
			for _, h := range v.RequestHeaders.GetResponse().GetHeaderMutation().GetSetHeaders() {
				value := string(h.GetHeader().GetRawValue())
				if value == "" {
					value = h.GetHeader().GetValue()
				}
				result.setHeader[strings.ToLower(h.GetHeader().GetKey())] = value
			}
			if fields := resp.GetDynamicMetadata().GetFields(); fields != nil && result.setHeader[destinationHeader] == "" {
				if lb := fields["envoy.lb"].GetStructValue().GetFields(); lb != nil {
					result.setHeader[destinationHeader] = lb[destinationHeader].GetStringValue()
				}
			}
		case *extproc.ProcessingResponse_RequestBody:
			streamed := v.RequestBody.GetResponse().GetBodyMutation().GetStreamedResponse()
			if streamed == nil {
				newBody, bodyDone = body, true
				continue
			}
			newBody = append(newBody, streamed.GetBody()...)
			bodyDone = streamed.GetEndOfStream()
		default:
			return nil, fmt.Errorf("unexpected answer from the picker: %T", v)
		}
	}
	result.body = newBody
	// the EPP may name fallbacks after the first choice, comma-separated (Envoy tries them in order)
	result.endpoint = strings.TrimSpace(strings.Split(result.setHeader[destinationHeader], ",")[0])
	return result, nil
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-llmops-gateway", identity)
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.timeout)
	defer cancel()
	stream, err := g.epp.Process(ctx)
	if err != nil {
		http.Error(w, "endpoint picker unreachable: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer func() { _ = stream.CloseSend() }()
	choice, err := g.pick(stream, r, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if im := choice.immediate; im != nil {
		code := int(im.GetStatus().GetCode())
		if code == 0 {
			code = http.StatusServiceUnavailable
		}
		w.WriteHeader(code)
		_, _ = w.Write(im.GetBody())
		return
	}
	if choice.endpoint == "" {
		http.Error(w, "the endpoint picker named no endpoint", http.StatusBadGateway)
		return
	}
	w.Header().Set("x-llmops-gateway-endpoint", choice.endpoint)
	upstream, err := http.NewRequestWithContext(ctx, r.Method, "http://"+choice.endpoint+r.URL.RequestURI(), bytes.NewReader(choice.body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for key, values := range r.Header {
		if !hopByHop[strings.ToLower(key)] {
			upstream.Header[key] = values
		}
	}
	for key, value := range choice.setHeader {
		if !hopByHop[key] && !strings.HasPrefix(key, ":") {
			upstream.Header.Set(key, value)
		}
	}
	resp, err := g.client.Do(upstream)
	if err != nil {
		http.Error(w, "upstream "+choice.endpoint+": "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, "upstream "+choice.endpoint+": "+err.Error(), http.StatusBadGateway)
		return
	}
	// the response goes through the picker too (usage accounting, its in-flight counts, model name rewrite)
	pairs := [][2]string{{":status", strconv.Itoa(resp.StatusCode)}}
	for key, values := range resp.Header {
		for _, v := range values {
			pairs = append(pairs, [2]string{strings.ToLower(key), v})
		}
	}
	final := respBody
	if err := stream.Send(&extproc.ProcessingRequest{Request: &extproc.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extproc.HttpHeaders{Headers: headerMap(pairs)},
	}}); err == nil {
		if err := stream.Send(&extproc.ProcessingRequest{Request: &extproc.ProcessingRequest_ResponseBody{
			ResponseBody: &extproc.HttpBody{Body: respBody, EndOfStream: true},
		}}); err == nil {
			final = g.responseBody(stream, respBody)
		}
	}
	for key, values := range resp.Header {
		if !hopByHop[strings.ToLower(key)] {
			w.Header()[key] = values
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(final)
	log.Printf("%s %s -> %s: %d", r.Method, r.URL.Path, choice.endpoint, resp.StatusCode)
}

// responseBody reads the picker's answers to the response headers and body: the body it returns (it may
// rewrite the model name), or the original when it returns none.
func (g *gateway) responseBody(stream extproc.ExternalProcessor_ProcessClient, original []byte) []byte {
	var out []byte
	mutated := false
	for {
		resp, err := stream.Recv()
		if err != nil {
			break
		}
		if v, ok := resp.Response.(*extproc.ProcessingResponse_ResponseBody); ok {
			streamed := v.ResponseBody.GetResponse().GetBodyMutation().GetStreamedResponse()
			if streamed == nil {
				break
			}
			mutated = true
			out = append(out, streamed.GetBody()...)
			if streamed.GetEndOfStream() {
				break
			}
		}
	}
	if !mutated {
		return original
	}
	return out
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to serve HTTP on")
	epp := flag.String("epp", "", "the endpoint picker's ext_proc address, host:port")
	plaintext := flag.Bool("plaintext", false, "speak plaintext gRPC to the picker (it serves TLS unless --secure-serving=false)")
	timeout := flag.Duration("timeout", 5*time.Minute, "per request")
	flag.Parse()
	if *epp == "" {
		log.Fatal("--epp is required")
	}
	// The EPP serves a self-signed certificate by default; gateways in front of it do not verify it either.
	creds := credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // as kgateway/Istio do
	if *plaintext {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(*epp, grpc.WithTransportCredentials(creds))
	if err != nil {
		log.Fatalf("endpoint picker %s: %v", *epp, err)
	}
	g := &gateway{epp: extproc.NewExternalProcessorClient(conn), client: &http.Client{}, timeout: *timeout}
	log.Printf("%s: listening on %s, endpoint picker %s", identity, *listen, *epp)
	server := &http.Server{Addr: *listen, Handler: g, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(server.ListenAndServe())
}
