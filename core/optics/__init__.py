"""Optics shared by the operators: how a lens turns depth into blur, and how that blur is rendered.

- thin_lens: the signed circle of confusion (px) of a thin lens, from distances in metres or relative disparity;
- aperture: the point-spread kernel of a round or N-blade aperture (exact pixel coverage, sums to 1);
- convolve: kernel convolution (shifted adds or FFT, replicated borders);
- layered: occlusion-aware layered depth of field (slice by CoC, fill what nearer layers hide, blur, composite).
- highlights: the linear boost of near-clipped pixels before a blur (a lamp blurs into a bright disc).

Operators import these (refocus, background replacement); nothing here imports an operator.
"""
