package handlers

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"tunelab/gpu"
	"tunelab/store"
	"tunelab/views"
)

// runFormValues reads the run form's fields as typed.
func runFormValues(r *http.Request) views.RunFormValues {
	f := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	return views.RunFormValues{
		DatasetID: f("dataset_id"), EvalDatasetID: f("eval_dataset_id"), BaseModel: f("base_model"), Method: f("method"),
		Epochs: f("epochs"), LearningRate: f("learning_rate"), BatchSize: f("batch_size"), LoRARank: f("lora_rank"),
		LoRAAlpha: f("lora_alpha"), MaxSeqLen: f("max_seq_len"), Seed: f("seed"), GPUType: f("gpu_type"), BudgetUSD: f("budget_usd"),
		ValidationSplit: f("validation_split"), SnapshotEvery: f("snapshot_every"), InitSnapshotID: f("init_snapshot_id"),
	}
}

// defaultRunValues fills the form from the backend's defaults; ?dataset_id= preselects
// (newRun also reads ?dataset= and ?from=).
func (a *app) defaultRunValues(r *http.Request) views.RunFormValues {
	o := a.runs.Backend.Offer()
	d := o.Defaults
	v := views.RunFormValues{
		DatasetID: r.URL.Query().Get("dataset_id"), Method: string(store.MethodLoRA),
		Epochs: strconv.Itoa(d.Epochs), LearningRate: formatFloat(d.LearningRate), BatchSize: strconv.Itoa(d.BatchSize),
		LoRARank: strconv.Itoa(d.LoRARank), LoRAAlpha: formatFloat(d.LoRAAlpha), MaxSeqLen: strconv.Itoa(d.MaxSeqLen),
		Seed: strconv.FormatInt(d.Seed, 10), ValidationSplit: formatFloat(d.ValidationSplit), SnapshotEvery: strconv.Itoa(d.SnapshotEvery),
	}
	if len(o.Models) > 0 {
		v.BaseModel = o.Models[len(o.Models)-1].ID
	}
	if len(o.GPUTypes) > 0 {
		v.GPUType = o.GPUTypes[0].ID
	}
	if len(o.Methods) > 0 && !slices.Contains(o.Methods, store.Method(v.Method)) {
		v.Method = string(o.Methods[0])
	}
	return v
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// parseRun turns the typed values into a run, or messages by field.
func (a *app) parseRun(userID int64, v views.RunFormValues) (store.NewRun, map[string]string) {
	errs := map[string]string{}
	intField := func(field, s string) int64 {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			errs[field] = fmt.Sprintf("%q is not a whole number.", s)
		}
		return n
	}
	floatField := func(field, s string) float64 {
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			errs[field] = fmt.Sprintf("%q is not a number.", s)
		}
		return n
	}
	cfg := store.RunConfig{
		BaseModel: v.BaseModel, Method: store.Method(v.Method), GPUType: v.GPUType,
		Epochs: int(intField("epochs", v.Epochs)), LearningRate: floatField("learning_rate", v.LearningRate),
		BatchSize: int(intField("batch_size", v.BatchSize)), MaxSeqLen: int(intField("max_seq_len", v.MaxSeqLen)),
		Seed: intField("seed", v.Seed), ValidationSplit: floatField("validation_split", v.ValidationSplit),
		SnapshotEvery: int(intField("snapshot_every", v.SnapshotEvery)),
	}
	if cfg.UsesLoRA() {
		cfg.LoRARank = int(intField("lora_rank", v.LoRARank))
		cfg.LoRAAlpha = floatField("lora_alpha", v.LoRAAlpha)
	}
	parseInitSnapshot(v, &cfg, errs)
	if v.BudgetUSD != "" {
		cents, ok := parseCents(v.BudgetUSD)
		if !ok || cents < 1 {
			errs["budget_usd"] = fmt.Sprintf("%q is not an amount in US dollars such as 5 or 12.50.", v.BudgetUSD)
		}
		cfg.BudgetCents = cents
	}
	nr := store.NewRun{UserID: userID, Config: cfg, Backend: gpu.RouteName(a.runs.Backend, cfg)}
	if v.DatasetID == "" {
		errs["dataset_id"] = "Choose the dataset to train on."
	} else if id, err := strconv.ParseInt(v.DatasetID, 10, 64); err != nil || id <= 0 {
		errs["dataset_id"] = "Choose one of your datasets."
	} else {
		nr.DatasetID = id
	}
	if v.EvalDatasetID != "" {
		if id, err := strconv.ParseInt(v.EvalDatasetID, 10, 64); err != nil || id <= 0 {
			errs["eval_dataset_id"] = "Choose one of your datasets, or none."
		} else if id == nr.DatasetID {
			errs["eval_dataset_id"] = "Use a different dataset from the training one, or none to hold out a share of the rows."
		} else {
			nr.EvalDatasetID = id
		}
	}
	// Parse errors come first: a range message about a value that did not parse would
	// only confuse.
	for k, msg := range cfg.Validate() {
		if _, seen := errs[k]; !seen {
			errs[k] = msg
		}
	}
	backendErrs := a.runs.Backend.Offer().CheckRun(a.runs.Backend.Name(), cfg)
	for k, msg := range backendErrs {
		if _, seen := errs[k]; !seen {
			errs[k] = msg
		}
	}
	if problem := gpu.RouteProblem(a.runs.Backend, cfg); problem != "" && len(errs) == 0 {
		errs["gpu_type"] = problem
	}
	if len(errs) > 0 {
		return nr, errs
	}
	return nr, nil
}

// runForm builds the form with the person's datasets and the backend's choices.
func (a *app) runForm(r *http.Request, userID int64, v views.RunFormValues) (views.RunForm, error) {
	ds, err := a.store.Datasets(r.Context(), userID)
	if err != nil {
		return views.RunForm{}, err
	}
	o := a.runs.Backend.Offer()
	f := views.RunForm{Values: v, Backend: backendChoice(a.runs.Backend), Action: "/runs", Errors: map[string]string{}, Help: runFormHelp(o)}
	if v.InitSnapshotID != "" {
		a.describeInitSnapshot(r, userID, &f)
	}
	if v.DatasetID == "" && len(ds) > 0 {
		f.Values.DatasetID = strconv.FormatInt(ds[0].ID, 10)
		if ds[0].Format == store.FormatPreference && slices.Contains(o.Methods, store.MethodDPO) {
			f.Values.Method = string(store.MethodDPO)
		}
	}
	for _, d := range ds {
		f.Datasets = append(f.Datasets, views.Option{Value: strconv.FormatInt(d.ID, 10), Label: d.Name,
			Note: fmt.Sprintf("%s · %s rows", d.Format, formatCount(int64(d.Rows)))})
	}
	for _, m := range o.Models {
		f.Models = append(f.Models, views.Option{Value: m.ID, Label: m.Name, Note: m.About})
	}
	for _, m := range o.Methods {
		f.Methods = append(f.Methods, views.Option{Value: string(m), Label: m.Label(), Note: methodAbout(m)})
	}
	for _, g := range o.GPUTypes {
		f.GPUTypes = append(f.GPUTypes, views.Option{Value: g.ID, Label: g.Name, Note: g.About})
	}
	f.Budget = a.billing.Enabled()
	if f.Rules, err = a.runFormRules(r, userID); err != nil {
		return views.RunForm{}, err
	}
	if f.Estimate, err = a.runEstimate(r, userID, f.Values); err != nil {
		return views.RunForm{}, err
	}
	return f, nil
}

// runFormHelp writes the form's help for what this backend really runs: the built-in CPU
// models want other settings than a large model on a GPU, and a method the backend does not
// offer is explained once, in the method's help, not promised elsewhere.
func runFormHelp(o gpu.Offer) views.RunFormHelp {
	gpus := hasGPUs(o)
	qlora := slices.Contains(o.Methods, store.MethodQLoRA)
	lr := formatFloat(o.Defaults.LearningRate)
	h := views.RunFormHelp{
		Dataset:   "The examples the model trains on. LoRA and full fine-tunes use chat or completion data; DPO needs a preference dataset.",
		BaseModel: "The pretrained model you fine-tune. Smaller models train faster and cost less GPU time.",
		Method:    "LoRA suits most jobs; DPO learns from preference data.",
		LearningRate: fmt.Sprintf("How far each step moves the weights. For large models on GPUs, typically 1e-4 to 3e-4 for LoRA "+
			"and about 1e-5 for full; the default here is %s. Write 0.0002 or 2e-4.", lr),
		BatchSize: "Rows per training step. Larger batches give smoother updates but need more GPU memory; 8–32 is typical.",
		LoRA:      "LoRA only.",
		Hardware:  "Where the run trains. You pay per second of GPU time, from the first heartbeat to the end.",
		GPUType:   "Bigger GPUs fit bigger models and batches.",
		GPULegend: "GPU type",
	}
	if qlora {
		h.Dataset = "The examples the model trains on. LoRA, QLoRA and full fine-tunes use chat or completion data; DPO needs a preference dataset."
		h.Method = "LoRA suits most jobs. Use QLoRA when GPU memory is tight, DPO for preference data."
		h.LoRA = "LoRA and QLoRA only."
		h.GPUType = "Bigger GPUs fit bigger models and batches. QLoRA lets a large model fit on a smaller GPU."
	} else {
		h.Method += " QLoRA is not offered by this backend: it needs 4-bit GPU kernels"
		if !gpus {
			h.Method += ", and this backend trains on the CPU"
		}
		h.Method += "."
	}
	if !gpus {
		h.BaseModel = "The model you fine-tune. The built-in models are small byte-level language models that train on this server's CPU; the smaller one trains faster."
		h.LearningRate = fmt.Sprintf("How far each step moves the weights. The built-in models are small byte-level models trained "+
			"from few parameters, so they want larger rates than big models on GPUs (where 1e-4 to 3e-4 is usual for LoRA): "+
			"1e-3 to 1e-2 works, and the default %s suits both of them. Write 0.003 or 3e-3.", lr)
		h.BatchSize = "Rows per training step. Larger batches give smoother updates but each step takes longer on the CPU; 8–32 is typical."
		h.Hardware = "Where the run trains. This backend has no GPUs: runs train on this server's CPU, and compute time is counted per second from the first heartbeat to the end."
		h.GPUType = "This backend trains on the CPU only."
		h.GPULegend = "Hardware"
	}
	return h
}

// methodAbout is the one line under a method's choice in the run form.
func methodAbout(m store.Method) string {
	switch m {
	case store.MethodLoRA:
		return "Trains small low-rank adapters on a frozen model: fast, and snapshots are small."
	case store.MethodQLoRA:
		return "LoRA on a 4-bit quantised model: the same idea with much less GPU memory."
	case store.MethodDPO:
		return "Learns from preference pairs (chosen vs rejected answers); needs a preference dataset."
	case store.MethodFull:
		return "Updates every weight: the most capacity, the largest snapshots."
	}
	return ""
}

// parseCents reads a dollar amount with at most two decimals ("5", "12.50") as cents.
func parseCents(s string) (int64, bool) {
	whole, frac, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(s), "$"), ".")
	if whole == "" || len(whole) > 9 || len(frac) > 2 {
		return 0, false
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w < 0 {
		return 0, false
	}
	var c int64
	if frac != "" {
		f, err := strconv.ParseInt(frac, 10, 64)
		if err != nil || f < 0 || frac[0] == '-' || frac[0] == '+' {
			return 0, false
		}
		if len(frac) == 1 {
			f *= 10
		}
		c = f
	}
	return w*100 + c, true
}
